"""Deliveries: the worker's claim, lease and per-delivery outcome writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Media


@dataclass(slots=True)
class Remaining:
    pending: int
    in_flight: int
    earliest_due: datetime | None


@dataclass(frozen=True, slots=True)
class SentRow:
    delivery_id: int
    cycle_id: int
    tg_message_id: int
    sent_at: datetime


async def mark_sent_many(conn: AsyncConnection, rows: list[SentRow]) -> dict[int, tuple[bool, bool]]:
    """Record sends of any number of batches in one statement; returns, per delivery id, (recorded,
    its cycle still live). The liveness check that must come before a batch's next send rides on this
    statement, saving a round trip per delivery; a worker records all its batches' sends together
    (worker/sent_records.py), saving most of the rest.

    A record is of a post Telegram made, so it holds whatever happened to the row meanwhile: a row the
    tick gave back to pending (its lease ran out while the record was delayed) is marked sent too, and
    no longer posted again (a resend a lease later may come after Telegram forgot the `random_id`). A
    row no longer open (cancelled by a stop while Telegram was answering, or already recorded) keeps
    its status, and the group's last post time moves for every record: the post happened, and the
    spacing rule counts it."""
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
            WHERE d.id = v.id AND d.status IN ('in_flight', 'pending')
            RETURNING d.id
        ), posted AS (
            -- The post's message id too (no pile-up's "previous post"), unless Telegram gave none
            -- (a de-duplicated resend answers 0): then the last known id stays.
            UPDATE groups g SET last_sent_at = GREATEST(g.last_sent_at, p.at),
                   last_message_id = CASE WHEN p.mid > 0 AND (g.last_sent_at IS NULL OR p.at >= g.last_sent_at)
                                          THEN p.mid ELSE g.last_message_id END
            FROM (SELECT d.owner_id, d.chat_id, max(v.at) AS at, (array_agg(v.mid ORDER BY v.at DESC))[1] AS mid
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


async def mark_skipped(conn: AsyncConnection, delivery_id: int, reason: str) -> None:
    """Not posted this round, by the broadcast's own rule (the previous post still on top): neither
    sent nor failed. The group's spacing and previous post stay as they were."""
    await conn.execute(
        """
        UPDATE deliveries SET status = 'skipped', reason = %(reason)s, lease_until = NULL, updated_at = now()
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "reason": reason},
    )


async def mark_failed(conn: AsyncConnection, delivery_id: int, *, reason: str, error: str | None, retry: int,
                      wait_until: datetime | None = None) -> None:
    await conn.execute(
        """
        UPDATE deliveries SET status = 'failed', reason = %(reason)s, error = %(error)s, retry = %(retry)s,
               wait_until = %(until)s, lease_until = NULL, updated_at = now()
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "reason": reason, "error": error, "retry": retry, "until": wait_until},
    )


async def mark_pending(conn: AsyncConnection, delivery_id: int, *, next_attempt_at: datetime, retry: int,
                       unsure_since: datetime | None = None) -> None:
    """Back to pending for a later attempt; `unsure_since` (when given) replaces the row's own: the
    first attempt that may have been posted, as the batch knows it."""
    await conn.execute(
        """
        UPDATE deliveries SET status = 'pending', next_attempt_at = %(at)s, retry = %(retry)s, lease_until = NULL,
               updated_at = now(), unsure_since = COALESCE(%(unsure)s, unsure_since)
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "at": next_attempt_at, "retry": retry, "unsure": unsure_since},
    )


async def mark_unsure(conn: AsyncConnection, delivery_id: int, at: datetime) -> None:
    """A send of this claimed row was cut off before its answer (the batch cancelled mid-request): it
    may have been posted at `at`, unless an earlier attempt already may have."""
    await conn.execute(
        """
        UPDATE deliveries SET unsure_since = COALESCE(unsure_since, %(at)s)
        WHERE id = %(id)s AND status = 'in_flight'
        """,
        {"id": delivery_id, "at": at},
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


async def cancel_account(conn: AsyncConnection, cycle_id: int, account_id: int, reason: str) -> int:
    """Cancel the cycle's open deliveries of one account (its session ended): the others go on."""
    cur = await conn.execute(
        """
        UPDATE deliveries SET status = 'cancelled', reason = %(reason)s, lease_until = NULL, updated_at = now()
        WHERE cycle_id = %(cycle)s AND account_id = %(account)s AND status IN ('pending', 'in_flight')
        """,
        {"cycle": cycle_id, "account": account_id, "reason": reason},
    )
    return cur.rowcount


async def remaining(conn: AsyncConnection, cycle_id: int) -> Remaining:
    """What is left of the cycle; a delivery whose account is paused falls due when the pause ends. The
    account is looked up per row (a cycle has a few dozen): a join let the planner read the whole
    accounts table for them."""
    cur = conn.cursor(row_factory=class_row(Remaining))
    await cur.execute(
        """
        SELECT count(*) FILTER (WHERE d.status = 'pending')::int AS pending,
               count(*) FILTER (WHERE d.status = 'in_flight')::int AS in_flight,
               min(GREATEST(d.next_attempt_at,
                            COALESCE((SELECT a.flood_until FROM accounts a WHERE a.id = d.account_id),
                                     d.next_attempt_at)))
                   FILTER (WHERE d.status = 'pending') AS earliest_due
        FROM deliveries d
        WHERE d.cycle_id = %(cycle)s
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
    last_message_id: int | None = None  # the broadcast's previous post here
    pile_up: str = "off"  # the broadcast's rule (core/pile_up.py)


async def cycle_media(conn: AsyncConnection, media_id: int) -> Media | None:
    """A media file with its bytes, for an upload."""
    cur = conn.cursor(row_factory=class_row(Media))
    await cur.execute("SELECT * FROM media WHERE id = %(id)s", {"id": media_id})
    return await cur.fetchone()
