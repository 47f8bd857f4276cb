"""Cycles and their deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Cycle

# Why each group of a round was not posted to, kept on the round (its delivery rows are pruned when
# the next round is created): the group's title as it is now, the reason, and a slow mode's end.
_FAILURES = """
    COALESCE((SELECT jsonb_agg(jsonb_build_object(
                  'chat_id', d.chat_id, 'title', COALESCE(g.title, d.chat_id::text), 'reason', d.reason,
                  'until', d.wait_until, 'removed', false) ORDER BY d.position)
              FROM deliveries d LEFT JOIN groups g ON g.owner_id = d.owner_id AND g.chat_id = d.chat_id
              WHERE d.cycle_id = c.id AND d.status = 'failed'), '[]'::jsonb)
"""


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
            sent = s.sent, failed = s.failed, cancelled = s.cancelled, skipped = s.skipped,
            failures = """ + _FAILURES + """
        FROM (
            SELECT cycle_id,
                   count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE status = 'skipped') AS skipped,
                   count(*) FILTER (WHERE status = 'in_flight') AS in_flight
            FROM deliveries GROUP BY cycle_id
        ) s
        WHERE s.cycle_id = c.id AND c.owner_id = %(id)s AND c.status = 'running' AND s.in_flight = 0
        """,
        {"id": owner_id},
    )
    return cancelled


@dataclass(slots=True)
class LastRounds:
    """What the status says of past rounds: the last one that posted (or tried to), and a newer one a
    Stop cancelled before it posted anything. The latter is not "the last round": it never ran."""

    ran: Cycle | None
    cancelled: Cycle | None


async def last_rounds(conn: AsyncConnection, owner_id: int) -> LastRounds:
    cur = conn.cursor(row_factory=class_row(Cycle))
    await cur.execute(
        """
        SELECT * FROM cycles WHERE owner_id = %(id)s AND finished_at IS NOT NULL AND sent + failed + skipped > 0
        ORDER BY finished_at DESC LIMIT 1
        """,
        {"id": owner_id},
    )
    ran = await cur.fetchone()
    await cur.execute(
        """
        SELECT * FROM cycles
        WHERE owner_id = %(id)s AND finished_at IS NOT NULL AND sent + failed + skipped = 0
          AND status = 'cancelled' AND id > %(after)s
        ORDER BY id DESC LIMIT 1
        """,
        {"id": owner_id, "after": ran.id if ran is not None else 0},
    )
    return LastRounds(ran, await cur.fetchone())


@dataclass(slots=True)
class OpenRound:
    """The owner's cycle that is created and not finished: prepared (its first post still ahead) or
    going out. `next_post_at` is its earliest pending delivery's due time (per-group spacing included)."""

    id: int
    message_id: int
    run_at: datetime
    started_at: datetime | None
    total: int
    done: int
    next_post_at: datetime | None


async def open_round(conn: AsyncConnection, owner_id: int) -> OpenRound | None:
    cur = conn.cursor(row_factory=class_row(OpenRound))
    await cur.execute(
        """
        SELECT c.id, c.message_id, c.run_at, c.started_at,
               count(d.id)::int AS total,
               (count(*) FILTER (WHERE d.status IN ('sent', 'failed', 'cancelled', 'skipped')))::int AS done,
               min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS next_post_at
        FROM cycles c LEFT JOIN deliveries d ON d.cycle_id = c.id
        WHERE c.owner_id = %(id)s AND c.status = 'running'
        GROUP BY c.id ORDER BY c.id DESC LIMIT 1
        """,
        {"id": owner_id},
    )
    return await cur.fetchone()


# ---- the send-batch worker's bookkeeping ------------------------------------------------------


async def get(conn: AsyncConnection, cycle_id: int) -> Cycle | None:
    cur = conn.cursor(row_factory=class_row(Cycle))
    await cur.execute("SELECT * FROM cycles WHERE id = %(id)s", {"id": cycle_id})
    return await cur.fetchone()


async def is_live(conn: AsyncConnection, cycle_id: int) -> bool:
    """The cycle still runs and its config was not stopped: checked before every send, so a stop
    takes effect between two sends of a batch."""
    cur = await conn.execute(
        """
        SELECT 1 FROM cycles c JOIN configs cf ON cf.owner_id = c.owner_id
        WHERE c.id = %(id)s AND c.status = 'running' AND cf.active
        """,
        {"id": cycle_id},
    )
    return await cur.fetchone() is not None


async def set_media_handle(conn: AsyncConnection, cycle_id: int, handle: str | None) -> None:
    """The cycle's media handle: an upload's until the first send, then the stored media's that send
    returned; None when it expired, so the next send uploads again."""
    await conn.execute("UPDATE cycles SET media_handle = %(h)s WHERE id = %(id)s", {"id": cycle_id, "h": handle})


async def set_continuation(conn: AsyncConnection, cycle_id: int, reason: str) -> None:
    await conn.execute(
        "UPDATE cycles SET last_continuation = %(r)s WHERE id = %(id)s", {"id": cycle_id, "r": reason}
    )


async def count_lock_busy(conn: AsyncConnection, cycle_id: int) -> None:
    await conn.execute("UPDATE cycles SET lock_busy = lock_busy + 1 WHERE id = %(id)s", {"id": cycle_id})


async def finish(conn: AsyncConnection, cycle_id: int, finished_at: datetime) -> Cycle | None:
    """Close the cycle once nothing is pending or in flight: counts, failure reasons, outcome.
    Returns the row only to the one caller that finished it."""
    cur = conn.cursor(row_factory=class_row(Cycle))
    await cur.execute(
        """
        WITH s AS (
            SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
                   count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                   count(*) FILTER (WHERE status = 'skipped') AS skipped,
                   count(*) FILTER (WHERE status IN ('pending', 'in_flight')) AS open,
                   COALESCE((SELECT jsonb_object_agg(reason, n) FROM (
                       SELECT reason, count(*) AS n FROM deliveries
                       WHERE cycle_id = %(id)s AND status = 'failed' GROUP BY reason) r), '{}'::jsonb) AS reasons
            FROM deliveries WHERE cycle_id = %(id)s
        )
        UPDATE cycles c SET
            -- A group skipped by the pile-up rule is done as asked: it counts with the sent ones.
            status = CASE WHEN s.cancelled > 0 AND s.sent + s.failed + s.skipped = 0 THEN 'cancelled'
                          ELSE 'done' END,
            outcome = CASE
                WHEN s.sent + s.failed + s.skipped = 0 AND s.cancelled > 0 THEN 'cancelled'
                WHEN s.sent + s.skipped > 0 AND s.failed = 0 AND s.cancelled = 0 THEN 'sent'
                WHEN s.sent + s.skipped > 0 THEN 'partial'
                ELSE 'failed'
            END,
            sent = s.sent, failed = s.failed, cancelled = s.cancelled, skipped = s.skipped, reasons = s.reasons,
            failures = """ + _FAILURES + """, finished_at = %(at)s
        FROM s
        WHERE c.id = %(id)s AND c.status = 'running' AND s.open = 0
        RETURNING c.*
        """,
        {"id": cycle_id, "at": finished_at},
    )
    return await cur.fetchone()


async def mark_removed(conn: AsyncConnection, cycle_id: int, chat_ids: list[int]) -> None:
    """The groups this round's failures took off the list: the status says so beside the reason."""
    await conn.execute(
        """
        UPDATE cycles SET failures = (
            SELECT COALESCE(jsonb_agg(CASE WHEN (f ->> 'chat_id')::bigint = ANY(%(chats)s)
                                           THEN f || '{"removed": true}'::jsonb ELSE f END), '[]'::jsonb)
            FROM jsonb_array_elements(failures) f)
        WHERE id = %(id)s
        """,
        {"id": cycle_id, "chats": chat_ids},
    )


async def last_ran_with(conn: AsyncConnection, owner_id: int, message_id: int) -> Cycle | None:
    """The latest finished round that posted (or tried to post) this message."""
    cur = conn.cursor(row_factory=class_row(Cycle))
    await cur.execute(
        """
        SELECT * FROM cycles
        WHERE owner_id = %(o)s AND message_id = %(m)s AND finished_at IS NOT NULL AND sent + failed > 0
        ORDER BY finished_at DESC LIMIT 1
        """,
        {"o": owner_id, "m": message_id},
    )
    return await cur.fetchone()


@dataclass(slots=True)
class RemovedGroup:
    chat_id: int
    title: str
    reason: str | None


async def apply_streaks(
    conn: AsyncConnection, cycle_id: int, streak_reasons: list[str], limit: int
) -> list[RemovedGroup]:
    """Per group of the finished cycle: a terminal failure extends its streak, a success resets it;
    a group reaching `limit` consecutive failing cycles is taken off the list (and its streak reset,
    so adding it back gives it a fresh start)."""
    # Only the rows whose streak changes: a success on a group with no streak writes nothing (it used to
    # write the same values back, a new row version per group per cycle, as many as the posts).
    changed = await conn.execute(
        """
        UPDATE groups g SET
            fail_streak = CASE WHEN d.status = 'sent' THEN 0 ELSE g.fail_streak + 1 END,
            last_failure = CASE WHEN d.status = 'sent' THEN g.last_failure ELSE d.reason END
        FROM deliveries d
        WHERE d.cycle_id = %(cycle)s AND g.owner_id = d.owner_id AND g.chat_id = d.chat_id
          AND ((d.status = 'sent' AND g.fail_streak <> 0)
               OR (d.status = 'failed' AND d.reason = ANY(%(reasons)s)))
        RETURNING g.fail_streak
        """,
        {"cycle": cycle_id, "reasons": streak_reasons},
    )
    if all(row[0] < limit for row in await changed.fetchall()):
        return []  # no streak reached the limit in this cycle, so none can be taken off now
    cur = conn.cursor(row_factory=class_row(RemovedGroup))
    await cur.execute(
        """
        UPDATE groups g SET selected = false, fail_streak = 0
        FROM cycles c
        WHERE c.id = %(cycle)s AND g.owner_id = c.owner_id AND g.selected AND g.fail_streak >= %(limit)s
        RETURNING g.chat_id, g.title, g.last_failure AS reason
        """,
        {"cycle": cycle_id, "limit": limit},
    )
    return await cur.fetchall()
