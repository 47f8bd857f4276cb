"""Pipeline efficiency: the real send-batch job against the floor of the same work.

Both process the same cycles (300 broadcasters × 20 groups). The floor is a bare psycopg loop that
only claims each cycle's 20 deliveries and marks them sent; the real path is the RQ job function
`send_batch` (lock, staleness checks, claim with lease, sends through the emulated gateway in Redis,
outcome rows, cycle summary), run in-process so queueing is not counted. Ratio = real / floor.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.common import SESSION_KEY, TICK_TOKEN, Spread, flush_redis, fresh_database, services
from bench.seed import seed
from core.crypto import SecretBox
from core.settings import Settings, load_settings
from db.pool import open_pool
from jobs.send_batch import send_batch
from jobs.tick import tick
from worker import context

USERS = 300
GROUPS = 20
REPETITIONS = 3


def _settings(url: str) -> Settings:
    return load_settings(
        database_url=url, redis_url=services()["redis"], session_keys=SESSION_KEY, tick_token=TICK_TOKEN,
        jitter_max_ms=0, send_pause_min_ms=0, send_pause_max_ms=0, cont_delay_ms=0, cont_jitter_ms=0,
        bot_api_base="http://127.0.0.1:9/unused", gateway="fake", _env_file=None,
    )


def _prepare(url: str, settings: Settings) -> list[int]:
    """Fresh cycles for every broadcaster; returns their ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE deliveries, cycles")
        conn.execute("UPDATE configs SET cycle = 0, last_scheduled_at = NULL, next_run_at = now() - interval '5 s'")
    flush_redis()
    seed_network(url)

    async def _tick() -> list[int]:
        pool = await open_pool(url, min_size=1, max_size=2)
        try:
            return (await tick(pool, settings)).cycle_ids
        finally:
            await pool.close()

    ids = asyncio.run(_tick())
    assert len(ids) == USERS, len(ids)
    return ids


def seed_network(url: str) -> None:
    from bench.seed import _seed_network

    _seed_network(services()["redis"], range(USERS), GROUPS, 2000, "tgcast:")


def _floor(url: str, cycle_ids: list[int]) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for cycle_id in cycle_ids:
            with conn.transaction():
                rows = conn.execute(
                    """
                    UPDATE deliveries SET status = 'in_flight', lease_until = now() + interval '2 min'
                    WHERE id IN (SELECT id FROM deliveries WHERE cycle_id = %(c)s AND status = 'pending'
                                 ORDER BY position LIMIT 20 FOR UPDATE SKIP LOCKED)
                    RETURNING id
                    """,
                    {"c": cycle_id},
                ).fetchall()
            for (delivery_id,) in rows:
                conn.execute("UPDATE deliveries SET status = 'sent', sent_at = now() WHERE id = %(id)s",
                             {"id": delivery_id})
    return USERS * GROUPS / (time.perf_counter() - started)


def _real(cycle_ids: list[int]) -> float:
    started = time.perf_counter()
    for cycle_id in cycle_ids:
        send_batch(cycle_id)
    return USERS * GROUPS / (time.perf_counter() - started)


def run(out_dir: Path) -> list[tuple[str, str, str]]:
    url = fresh_database("tgcast_bench_pipeline")
    seed(url, services()["redis"], users=USERS, groups_per_user=GROUPS, interval_minutes=10,
         box=SecretBox([SESSION_KEY]), start_at=datetime.now(UTC) - timedelta(seconds=5), spread_s=0)
    settings = _settings(url)
    context.use_settings(settings)
    floors, reals = [], []
    try:
        for _ in range(REPETITIONS):
            floors.append(_floor(url, _prepare(url, settings)))
            reals.append(_real(_prepare(url, settings)))
    finally:
        context.close_runtime()
    ratios = [r / f for r, f in zip(reals, floors, strict=True)]
    verdict = "met" if Spread.of(ratios).median >= 0.3 else "MISSED"
    return [
        ("pipeline floor (claim 20 + mark sent, psycopg): deliveries/s", Spread.of(floors).fmt(0), ""),
        ("pipeline real send_batch job: deliveries/s", Spread.of(reals).fmt(0),
         "one process, emulated gateway in Redis, no pacing pause"),
        ("pipeline efficiency real / floor", Spread.of(ratios).fmt(2), f"goal ≥ 0.3: {verdict}"),
    ]


if __name__ == "__main__":
    for row in run(Path("artifacts/bench")):
        print(" | ".join(row))
