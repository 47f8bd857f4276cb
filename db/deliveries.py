"""Deliveries: the worker's claim, lease and per-delivery outcome writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Delivery, Media


@dataclass(slots=True)
class Remaining:
    pending: int
    in_flight: int
    earliest_due: datetime | None


# The claim's two statements, shared with the batch start (db/batches.py). Parameters: cycle, due_by,
# lease, limit.
CLAIM_SPACING_SQL = """
    UPDATE deliveries d SET next_attempt_at = g.last_sent_at + make_interval(mins => c.interval_minutes)
    FROM cycles c, groups g
    WHERE d.cycle_id = %(cycle)s AND d.status = 'pending' AND c.id = d.cycle_id
      AND g.owner_id = d.owner_id AND g.chat_id = d.chat_id
      AND g.last_sent_at + make_interval(mins => c.interval_minutes) > d.next_attempt_at
"""
CLAIM_SQL = """
    UPDATE deliveries SET status = 'in_flight', lease_until = %(lease)s, updated_at = now()
    WHERE id IN (
        SELECT id FROM deliveries
        WHERE cycle_id = %(cycle)s AND status = 'pending' AND next_attempt_at <= %(due_by)s
        ORDER BY next_attempt_at, position
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
"""


async def claim(
    conn: AsyncConnection, cycle_id: int, *, due_by: datetime, lease_until: datetime, limit: int
) -> list[Delivery]:
    """Take at most `limit` deliveries of the cycle due by `due_by` in one statement, in the order
    they fall due (the batch waits for each one's `next_attempt_at` before sending it). Rows another
    job is claiming are skipped, so two jobs for one cycle never hold the same delivery.

    First, every pending delivery of the cycle is pushed to its group's last post + the interval where
    that is later: the spacing was applied when the cycle was created, and this re-applies it from
    the groups' actual send times, so no path (a cancelled cycle's late send, a clock edit) can
    bring two posts in one group closer than the interval."""
    params = {"cycle": cycle_id, "due_by": due_by, "lease": lease_until, "limit": limit}
    await conn.execute(CLAIM_SPACING_SQL, params)
    cur = conn.cursor(row_factory=class_row(Delivery))
    await cur.execute(CLAIM_SQL, params)
    return sorted(await cur.fetchall(), key=lambda d: (d.next_attempt_at, d.position))


@dataclass(frozen=True, slots=True)
class SentRow:
    delivery_id: int
    cycle_id: int
    tg_message_id: int
    sent_at: datetime


async def mark_sent(
    conn: AsyncConnection, delivery_id: int, cycle_id: int, tg_message_id: int, sent_at: datetime
) -> tuple[bool, bool]:
    """Record one send; returns (recorded, cycle still live). See `mark_sent_many`."""
    return (await mark_sent_many(conn, [SentRow(delivery_id, cycle_id, tg_message_id, sent_at)]))[delivery_id]


async def mark_sent_many(conn: AsyncConnection, rows: list[SentRow]) -> dict[int, tuple[bool, bool]]:
    """Record sends of any number of batches in one statement; returns, per delivery id, (recorded,
    its cycle still live). The liveness check that must come before a batch's next send rides on this
    statement, saving a round trip per delivery; a worker records all its batches' sends together
    (jobs/sent_records.py), saving most of the rest.

    The group's last post time moves even when the delivery row is no longer in flight (its cycle was
    cancelled while Telegram was answering): the post happened, and the spacing rule counts it."""
    if not rows:
        return {}
    cur = await conn.execute(
        """
        WITH v AS (
            SELECT * FROM unnest(%(ids)s::bigint[], %(cycles)s::bigint[], %(mids)s::bigint[],
                                 %(ats)s::timestamptz[]) AS v(id, cycle_id, mid, at)
        ), marked AS (
            UPDATE deliveries d SET status = 'sent', sent_at = v.at, tg_message_id = v.mid,
                   lease_until = NULL, reason = NULL, error = NULL, updated_at = now()
            FROM v
            WHERE d.id = v.id AND d.status = 'in_flight'
            RETURNING d.id
        ), posted AS (
            UPDATE groups g SET last_sent_at = GREATEST(g.last_sent_at, p.at)
            FROM (SELECT d.owner_id, d.chat_id, max(v.at) AS at
                  FROM v JOIN deliveries d ON d.id = v.id
                  GROUP BY d.owner_id, d.chat_id) p
            WHERE g.owner_id = p.owner_id AND g.chat_id = p.chat_id
        )
        SELECT v.id,
               EXISTS (SELECT 1 FROM marked m WHERE m.id = v.id),
               EXISTS (SELECT 1 FROM cycles c JOIN configs cf ON cf.owner_id = c.owner_id
                       WHERE c.id = v.cycle_id AND c.status = 'running' AND cf.active)
        FROM v
        """,
        {"ids": [r.delivery_id for r in rows], "cycles": [r.cycle_id for r in rows],
         "mids": [r.tg_message_id for r in rows], "ats": [r.sent_at for r in rows]},
    )
    return {int(r[0]): (bool(r[1]), bool(r[2])) for r in await cur.fetchall()}


async def mark_failed(conn: AsyncConnection, delivery_id: int, *, reason: str, error: str | None, retry: int) -> None:
    await conn.execute(
        """
        UPDATE deliveries SET status = 'failed', reason = %(reason)s, error = %(error)s, retry = %(retry)s,
               lease_until = NULL, updated_at = now()
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "reason": reason, "error": error, "retry": retry},
    )


async def mark_pending(conn: AsyncConnection, delivery_id: int, *, next_attempt_at: datetime, retry: int) -> None:
    await conn.execute(
        """
        UPDATE deliveries SET status = 'pending', next_attempt_at = %(at)s, retry = %(retry)s, lease_until = NULL,
               updated_at = now()
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "at": next_attempt_at, "retry": retry},
    )


async def release(conn: AsyncConnection, delivery_ids: list[int], *, not_before: datetime | None = None) -> None:
    """Give claimed deliveries back untouched (retry unchanged), optionally not before a time."""
    if not delivery_ids:
        return
    await conn.execute(
        """
        UPDATE deliveries SET status = 'pending', lease_until = NULL, updated_at = now(),
               next_attempt_at = GREATEST(next_attempt_at, COALESCE(%(nb)s, next_attempt_at))
        WHERE id = ANY(%(ids)s) AND status = 'in_flight'
        """,
        {"ids": delivery_ids, "nb": not_before},
    )


async def cancel(conn: AsyncConnection, delivery_ids: list[int], reason: str) -> None:
    if not delivery_ids:
        return
    await conn.execute(
        """
        UPDATE deliveries SET status = 'cancelled', reason = %(reason)s, lease_until = NULL, updated_at = now()
        WHERE id = ANY(%(ids)s) AND status IN ('pending', 'in_flight')
        """,
        {"ids": delivery_ids, "reason": reason},
    )


async def remaining(conn: AsyncConnection, cycle_id: int) -> Remaining:
    cur = conn.cursor(row_factory=class_row(Remaining))
    await cur.execute(
        """
        SELECT count(*) FILTER (WHERE status = 'pending')::int AS pending,
               count(*) FILTER (WHERE status = 'in_flight')::int AS in_flight,
               min(next_attempt_at) FILTER (WHERE status = 'pending') AS earliest_due
        FROM deliveries WHERE cycle_id = %(cycle)s
        """,
        {"cycle": cycle_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


@dataclass(slots=True)
class Target:
    chat_id: int
    kind: str
    access_hash: int | None
    topic_id: int | None


async def cycle_media(conn: AsyncConnection, media_id: int) -> Media | None:
    """A media file with its bytes, for an upload."""
    cur = conn.cursor(row_factory=class_row(Media))
    await cur.execute("SELECT * FROM media WHERE id = %(id)s", {"id": media_id})
    return await cur.fetchone()
