"""/tick end to end (selection, checks, cycles and deliveries, enqueue, recovery) with 10,000 and with
100,000 active configs, the same number due. Its cost should follow the number due, not the total."""

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
REPETITIONS = 5


def _fill(url: str, total: int) -> None:
    box = SecretBox([SESSION_KEY])
    now = datetime.now(UTC)
    redis = services()["redis"]
    seed(url, redis, users=DUE, start_at=now - timedelta(seconds=30), spread_s=0,
         groups_per_user=GROUPS, interval_minutes=10, box=box, with_network=False)
    seed(url, redis, users=total - DUE, first_user=DUE, start_at=now + timedelta(hours=1), spread_s=7 * 3600,
         groups_per_user=GROUPS, interval_minutes=10, box=box, with_network=False)


def _reset(url: str) -> None:
    """Back to 'DUE configs due now, no cycles' between repetitions."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE deliveries, cycles")
        conn.execute(
            """
            UPDATE configs SET cycle = 0, last_scheduled_at = NULL, next_run_at = now() - interval '30 seconds'
            WHERE owner_id < %(limit)s
            """,
            {"limit": USER_BASE + DUE},
        )
    flush_redis()


async def _timed_tick(url: str) -> float:
    settings = load_settings(database_url=url, redis_url=services()["redis"], session_keys=SESSION_KEY,
                             tick_token=TICK_TOKEN, jitter_max_ms=0, _env_file=None)
    pool = await open_pool(url, min_size=1, max_size=2)
    try:
        summary = await tick(pool, settings)
    finally:
        await pool.close()
    assert summary.enqueued == DUE, summary
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
    return rows


if __name__ == "__main__":
    for row in run(Path("artifacts/bench")):
        print(" | ".join(row))
