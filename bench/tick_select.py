"""/tick selection cost: the due-config query over 10,000 and 100,000 configs with the same number
due. With the `configs_due` partial index its cost follows the number due, not the table size."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.common import Spread, fresh_database
from db import tick as tick_sql

SIZES = (10_000, 100_000)
DUE = 200
REPETITIONS = 30


def _fill(url: str, total: int) -> None:
    """`total` configs: DUE due now, the others half inactive and half due in 1-8 hours."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO bot_users (user_id, status) SELECT g, 'active' FROM generate_series(1, %(n)s) g",
            {"n": total},
        )
        conn.execute(
            """
            INSERT INTO messages (owner_id, kind, text, content_hash)
            SELECT g, 'text', 'bench', 'h' FROM generate_series(1, %(n)s) g
            """,
            {"n": total},
        )
        conn.execute(
            """
            INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at)
            SELECT m.owner_id, m.id, 10,
                   m.owner_id <= %(due)s OR m.owner_id %% 2 = 0,
                   CASE WHEN m.owner_id <= %(due)s THEN now() - interval '10 seconds'
                        ELSE now() + make_interval(mins => (60 + m.owner_id %% 420)::int) END
            FROM messages m
            """,
            {"due": DUE},
        )
        conn.execute("ANALYZE")


async def _measure(url: str) -> tuple[list[float], str]:
    timings: list[float] = []
    async with await psycopg.AsyncConnection.connect(url) as conn:
        until = datetime.now(UTC) + timedelta(seconds=60)
        for _ in range(REPETITIONS):
            started = time.perf_counter()
            rows = await tick_sql.lock_due(conn, until, 1000)
            timings.append((time.perf_counter() - started) * 1000)
            await conn.rollback()
            assert len(rows) == DUE
        cur = await conn.execute(
            """
            EXPLAIN SELECT owner_id FROM configs WHERE active AND next_run_at <= %(until)s
            ORDER BY next_run_at LIMIT 1000 FOR UPDATE SKIP LOCKED
            """,
            {"until": until},
        )
        plan = [str(r[0]) for r in await cur.fetchall()]
        await conn.rollback()
    scan = next((line.strip().lstrip("-> ") for line in plan if "configs_due" in line),
                "no configs_due in the plan: " + " / ".join(plan))
    return timings, scan.split("  (")[0]


def run(out_dir: Path) -> list[tuple[str, str, str]]:
    rows = []
    medians = []
    for total in SIZES:
        url = fresh_database(f"tgcast_bench_tick_{total}")
        _fill(url, total)
        timings, scan = asyncio.run(_measure(url))
        spread = Spread.of(timings)
        medians.append(spread.median)
        rows.append((f"tick selection, {total:,} configs ({DUE} due): ms", spread.fmt(2), scan))
    ratio = medians[-1] / medians[0]
    verdict = "met" if ratio < 2.0 else "MISSED"
    rows.append((f"selection cost ratio {SIZES[-1]:,} / {SIZES[0]:,} configs", f"{ratio:.2f}",
                 f"goal < 2 (×{SIZES[-1] // SIZES[0]} the table): {verdict}"))
    return rows


if __name__ == "__main__":
    for row in run(Path(__file__).resolve().parent.parent / "artifacts" / "bench"):
        print(" | ".join(row))
