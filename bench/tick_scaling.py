"""/tick end to end (selection, checks, cycles and deliveries, enqueue, recovery) with 10,000 and with
100,000 active configs, the same number due. Its cost should follow the number due, not the total.

Then one minute of the real shape on an otherwise idle box: 2,000 of 10,000 configs due (10,000
broadcasters every 5 minutes, a cron once a minute), 20 groups each, at the default TICK_CAP. The same
tick at full load is measured by the real-shape capacity run (bench/capacity.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.common import SESSION_KEY, TICK_TOKEN, Spread, flush_redis, fresh_database, services
from bench.seed import USER_BASE, seed
from core.crypto import SecretBox
from core.settings import load_settings
from db.pool import open_pool
from jobs.tick import tick

SIZES = (10_000, 100_000)
DUE = 500
GROUPS = 5
REPETITIONS = 4
REAL_TOTAL, REAL_DUE, REAL_GROUPS = 10_000, 2_000, 20
REAL_REPETITIONS = 3


def _fill(url: str, total: int, due: int = DUE, groups: int = GROUPS) -> None:
    box = SecretBox([SESSION_KEY])
    now = datetime.now(UTC)
    redis = services()["redis"]
    seed(url, redis, users=due, start_at=now - timedelta(seconds=30), spread_s=0,
         groups_per_user=groups, interval_minutes=10, box=box, with_network=False)
    seed(url, redis, users=total - due, first_user=due, start_at=now + timedelta(hours=1), spread_s=7 * 3600,
         groups_per_user=groups, interval_minutes=10, box=box, with_network=False)


def _reset(url: str, due: int = DUE) -> None:
    """Back to 'DUE configs due now, no cycles' between repetitions."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE deliveries, cycles")
        conn.execute(
            """
            UPDATE configs SET cycle = 0, last_scheduled_at = NULL, next_run_at = now() - interval '30 seconds'
            WHERE owner_id < %(limit)s
            """,
            {"limit": USER_BASE + due},
        )
    flush_redis()


async def _timed_tick(url: str, due: int = DUE) -> float:
    settings = load_settings(database_url=url, redis_url=services()["redis"], session_keys=SESSION_KEY,
                             tick_token=TICK_TOKEN, jitter_max_ms=0, _env_file=None)
    pool = await open_pool(url, min_size=1, max_size=2)
    try:
        summary = await tick(pool, settings)
    finally:
        await pool.close()
    assert summary.enqueued == due, summary
    return float(summary.duration_ms)


def run(out_dir: Path) -> list[tuple[str, str, str]]:
    urls = {}
    for total in SIZES:
        urls[total] = fresh_database(f"tgcast_bench_tickscale_{total}")
        _fill(urls[total], total)
    timings: dict[int, list[float]] = {total: [] for total in SIZES}
    for _ in range(REPETITIONS):  # alternated, so drift on a shared machine hits both alike
        for total in SIZES:
            _reset(urls[total])
            timings[total].append(asyncio.run(_timed_tick(urls[total])))
    rows = [(f"/tick with {total:,} active configs ({DUE} due): ms", Spread.of(timings[total]).fmt(0),
             f"{REPETITIONS} repetitions, each creating {DUE} cycles × {GROUPS} deliveries and enqueueing them")
            for total in SIZES]
    ratios = [b / a for a, b in zip(timings[SIZES[0]], timings[SIZES[1]], strict=True)]
    verdict = "met" if Spread.of(ratios).median <= 1.5 else "MISSED"
    rows.append((f"/tick time ratio {SIZES[1]:,} / {SIZES[0]:,} configs", Spread.of(ratios).fmt(2),
                 f"goal ≤ 1.5: {verdict}"))
    real = fresh_database("tgcast_bench_tickscale_real")
    _fill(real, REAL_TOTAL, REAL_DUE, REAL_GROUPS)
    real_ms = []
    for _ in range(REAL_REPETITIONS):
        _reset(real, REAL_DUE)
        real_ms.append(asyncio.run(_timed_tick(real, REAL_DUE)))
    rows.append((f"/tick with {REAL_DUE:,} of {REAL_TOTAL:,} configs due, {REAL_GROUPS} groups each: ms",
                 Spread.of(real_ms).fmt(0),
                 f"a minute of the real shape (cron once a minute), default TICK_CAP, no other load of ours; "
                 f"{REAL_REPETITIONS} repetitions; {REAL_DUE * REAL_GROUPS:,} delivery rows each"))
    return rows


if __name__ == "__main__":
    for row in run(Path("artifacts/bench")):
        print(" | ".join(row))
