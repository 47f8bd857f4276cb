"""Figures for the admin's statistics, read from the summaries the runtime keeps (cycles, accounts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from psycopg import AsyncConnection


async def active_broadcasts(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM configs WHERE active")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def accounts_in_flood(conn: AsyncConnection, now: datetime) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM accounts WHERE flood_until > %(now)s AND status = 'active'", {"now": now}
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


@dataclass(slots=True)
class Deliveries:
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


async def deliveries_since(conn: AsyncConnection, since: datetime) -> Deliveries:
    """Sums over the cycles finished since `since` (cycle rows outlive their pruned deliveries)."""
    cur = await conn.execute(
        """
        SELECT COALESCE(sum(sent), 0), COALESCE(sum(failed), 0), COALESCE(sum(cancelled), 0)
        FROM cycles WHERE finished_at >= %(since)s
        """,
        {"since": since},
    )
    row = await cur.fetchone()
    assert row is not None
    cur = await conn.execute(
        """
        SELECT r.key, sum(r.value::int) FROM cycles c, jsonb_each_text(c.reasons) r
        WHERE c.finished_at >= %(since)s GROUP BY r.key ORDER BY 2 DESC, 1
        """,
        {"since": since},
    )
    reasons = {str(k): int(v) for k, v in await cur.fetchall()}
    return Deliveries(int(row[0]), int(row[1]), int(row[2]), reasons)


async def lag_p95_ms(conn: AsyncConnection, since: datetime) -> int | None:
    cur = await conn.execute(
        """
        SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY lag_ms)
        FROM cycles WHERE started_at >= %(since)s AND lag_ms IS NOT NULL
        """,
        {"since": since},
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else round(row[0])


async def sent_per_hour(conn: AsyncConnection, now: datetime, hours: int = 24) -> list[int]:
    """Group sends of finished cycles per hour, oldest first; the last bucket is the current hour."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    cur = await conn.execute(
        """
        SELECT floor(extract(epoch FROM finished_at - %(start)s) / 3600)::int AS bucket, sum(sent)
        FROM cycles WHERE finished_at >= %(start)s AND finished_at <= %(now)s
        GROUP BY bucket
        """,
        {"start": start, "now": now},
    )
    buckets = [0] * hours
    for bucket, total in await cur.fetchall():
        if 0 <= bucket < hours:
            buckets[bucket] = int(total)
    return buckets
