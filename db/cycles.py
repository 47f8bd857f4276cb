"""Cycles and their deliveries."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Cycle


async def cancel_open(conn: AsyncConnection, owner_id: int) -> int:
    """Cancel the pending deliveries of the owner's running cycles; finish the cycles nothing is in
    flight for (a delivery being sent right now is left to its job, which finishes the cycle).
    Returns the number of deliveries cancelled."""
    cur = await conn.execute(
        """
        UPDATE deliveries d SET status = 'cancelled', reason = 'stopped', updated_at = now()
        FROM cycles c
        WHERE c.id = d.cycle_id AND c.owner_id = %(id)s AND c.status = 'running' AND d.status = 'pending'
        """,
        {"id": owner_id},
    )
    cancelled = cur.rowcount
    await conn.execute(
        """
        UPDATE cycles c SET
            status = 'cancelled', outcome = 'cancelled', finished_at = now(),
            sent = s.sent, failed = s.failed, cancelled = s.cancelled
        FROM (
            SELECT cycle_id,
                   count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE status = 'in_flight') AS in_flight
            FROM deliveries GROUP BY cycle_id
        ) s
        WHERE s.cycle_id = c.id AND c.owner_id = %(id)s AND c.status = 'running' AND s.in_flight = 0
        """,
        {"id": owner_id},
    )
    return cancelled


async def last_finished(conn: AsyncConnection, owner_id: int) -> Cycle | None:
    cur = conn.cursor(row_factory=class_row(Cycle))
    await cur.execute(
        """
        SELECT * FROM cycles WHERE owner_id = %(id)s AND finished_at IS NOT NULL
        ORDER BY finished_at DESC LIMIT 1
        """,
        {"id": owner_id},
    )
    return await cur.fetchone()
