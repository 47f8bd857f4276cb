"""The /tick scheduler's SQL: due selection, cycle creation, recovery and pruning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import class_row

from core.schedule import random_id


@dataclass(slots=True)
class DueConfig:
    owner_id: int
    message_id: int | None
    interval_minutes: int
    next_run_at: datetime
    cycle: int
    last_scheduled_at: datetime | None  # the previous cycle's scheduled start


@dataclass(slots=True)
class OwnerState:
    """Everything the tick needs to decide whether a due config is actionable."""

    owner_id: int
    status: str
    expires_at: datetime | None
    account_status: str | None  # None: no account
    flood_until: datetime | None
    has_message: bool
    selected_groups: int
    running_cycle: bool
    # The usernames this owner was resolved under as a super admin (services.access.is_super_admin).
    admin_usernames: list[str]

    def allowed_at(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)


@dataclass(slots=True)
class StalledCycle:
    id: int
    owner_id: int
    earliest_due: datetime | None  # None: nothing pending; the job only has to finish the cycle


async def lock_due(conn: AsyncConnection, until: datetime, cap: int) -> list[DueConfig]:
    """Due configs, locked for this transaction; rows another tick holds are skipped, so two ticks
    at once never both start a cycle for one config. Plain on purpose (no joins): the planner then
    walks the `configs_due` partial index and stops after `cap` rows."""
    cur = conn.cursor(row_factory=class_row(DueConfig))
    await cur.execute(
        """
        SELECT owner_id, message_id, interval_minutes, next_run_at, cycle, last_scheduled_at FROM configs
        WHERE active AND next_run_at <= %(until)s
        ORDER BY next_run_at
        LIMIT %(cap)s
        FOR UPDATE SKIP LOCKED
        """,
        {"until": until, "cap": cap},
    )
    return await cur.fetchall()


async def owner_states(conn: AsyncConnection, owner_ids: list[int]) -> dict[int, OwnerState]:
    cur = conn.cursor(row_factory=class_row(OwnerState))
    await cur.execute(
        """
        SELECT u.user_id AS owner_id, u.status, u.expires_at,
               a.status AS account_status, a.flood_until,
               (m.id IS NOT NULL AND m.deleted_at IS NULL) AS has_message,
               (SELECT count(*) FROM groups g WHERE g.owner_id = cf.owner_id AND g.selected)::int
                   AS selected_groups,
               EXISTS (SELECT 1 FROM cycles c WHERE c.owner_id = cf.owner_id AND c.status = 'running')
                   AS running_cycle,
               ARRAY(SELECT au.username FROM admin_usernames au WHERE au.user_id = cf.owner_id)
                   AS admin_usernames
        FROM configs cf
        JOIN bot_users u ON u.user_id = cf.owner_id
        LEFT JOIN accounts a ON a.owner_id = cf.owner_id
        LEFT JOIN messages m ON m.id = cf.message_id
        WHERE cf.owner_id = ANY(%(ids)s)
        """,
        {"ids": owner_ids},
    )
    return {row.owner_id: row for row in await cur.fetchall()}


async def postpone(conn: AsyncConnection, owner_id: int, next_run_at: datetime) -> None:
    await conn.execute(
        "UPDATE configs SET next_run_at = %(at)s, updated_at = now() WHERE owner_id = %(id)s",
        {"id": owner_id, "at": next_run_at},
    )


async def create_cycle(
    conn: AsyncConnection, due: DueConfig, *, scheduled_at: datetime, run_at: datetime, next_run_at: datetime
) -> tuple[int, int, int]:
    """Start the config's next cycle: bump the counter, move the clock, drop the delivery rows of the
    owner's finished cycles (their summaries stay on the cycle rows), and create one pending
    delivery per selected group, each due no earlier than its group's last post + the interval (so a
    group posted late by the previous cycle is not posted again seconds later). Call inside the tick's
    transaction. Returns (cycle id, seq, total)."""
    assert due.message_id is not None
    cur = await conn.execute(
        """
        UPDATE configs SET cycle = cycle + 1, last_scheduled_at = %(scheduled)s, next_run_at = %(next)s,
               updated_at = now()
        WHERE owner_id = %(id)s
        RETURNING cycle
        """,
        {"id": due.owner_id, "next": next_run_at, "scheduled": scheduled_at},
    )
    row = await cur.fetchone()
    assert row is not None
    seq = int(row[0])
    await conn.execute(
        """
        DELETE FROM deliveries d USING cycles c
        WHERE d.cycle_id = c.id AND c.owner_id = %(id)s AND c.status <> 'running'
        """,
        {"id": due.owner_id},
    )
    cur = await conn.execute(
        """
        SELECT chat_id, GREATEST(%(run_at)s, last_sent_at + make_interval(mins => %(iv)s)) FROM groups
        WHERE owner_id = %(id)s AND selected ORDER BY added_at, chat_id
        """,
        {"id": due.owner_id, "run_at": run_at, "iv": due.interval_minutes},
    )
    rows = await cur.fetchall()
    chat_ids = [int(r[0]) for r in rows]
    not_before = [r[1] for r in rows]
    cur = await conn.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, total)
        VALUES (%(owner)s, %(seq)s, %(msg)s, %(iv)s, %(scheduled)s, %(run_at)s, %(total)s)
        RETURNING id
        """,
        {"owner": due.owner_id, "seq": seq, "msg": due.message_id, "iv": due.interval_minutes,
         "scheduled": scheduled_at, "run_at": run_at, "total": len(chat_ids)},
    )
    row = await cur.fetchone()
    assert row is not None
    cycle_id = int(row[0])
    # The idempotency key is derived from the delivery id, so the ids are taken before the insert.
    cur = await conn.execute(
        "SELECT nextval('deliveries_id_seq') FROM generate_series(1, %(n)s)", {"n": len(chat_ids)}
    )
    ids = [int(r[0]) for r in await cur.fetchall()]
    async with conn.cursor() as c:
        await c.executemany(
            """
            INSERT INTO deliveries (id, cycle_id, owner_id, chat_id, position, next_attempt_at, random_id)
            VALUES (%(id)s, %(cycle)s, %(owner)s, %(chat)s, %(pos)s, %(at)s, %(rid)s)
            """,
            [
                {"id": did, "cycle": cycle_id, "owner": due.owner_id, "chat": chat_id, "pos": pos,
                 "at": at, "rid": random_id(did, cycle_id)}
                for pos, (did, chat_id, at) in enumerate(zip(ids, chat_ids, not_before, strict=True))
            ],
        )
    return cycle_id, seq, len(chat_ids)


async def release_expired_leases(conn: AsyncConnection, now: datetime) -> list[int]:
    """In-flight deliveries whose job died go back to pending (their random_id stays, so a resend
    of one that did reach Telegram is de-duplicated). Returns the cycles touched."""
    cur = await conn.execute(
        """
        UPDATE deliveries SET status = 'pending', lease_until = NULL, updated_at = now()
        WHERE status = 'in_flight' AND lease_until < %(now)s
        RETURNING cycle_id
        """,
        {"now": now},
    )
    return sorted({int(r[0]) for r in await cur.fetchall()})


async def stalled_cycles(conn: AsyncConnection, created_before: datetime) -> list[StalledCycle]:
    """Running cycles nothing is in flight for: each needs a live job (the caller checks Redis)."""
    cur = conn.cursor(row_factory=class_row(StalledCycle))
    await cur.execute(
        """
        SELECT c.id, c.owner_id,
               min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS earliest_due
        FROM cycles c LEFT JOIN deliveries d ON d.cycle_id = c.id
        WHERE c.status = 'running' AND c.created_at < %(before)s
        GROUP BY c.id
        HAVING count(d.id) FILTER (WHERE d.status = 'in_flight') = 0
        """,
        {"before": created_before},
    )
    return await cur.fetchall()


async def prune_cycles(conn: AsyncConnection, finished_before: datetime, limit: int = 10_000) -> int:
    """Drop cycle summaries past the retention (their deliveries go with them), a bounded slice
    per tick so one tick never stalls on a large backlog."""
    cur = await conn.execute(
        """
        DELETE FROM cycles WHERE id IN (
            SELECT id FROM cycles WHERE finished_at < %(before)s ORDER BY finished_at LIMIT %(limit)s
        )
        """,
        {"before": finished_before, "limit": limit},
    )
    return cur.rowcount


# Storage stays bounded (docs/runtime.md, "Pruning"): besides the cycle summaries, the tick removes what
# nothing can show or use any more. Each prune takes a bounded slice and walks an index of its candidates only
# (migration 0004), so its cost follows what there is to remove, not the size of the tables.
_PRUNE_SLICE = 10_000


async def prune(conn: AsyncConnection, now: datetime, retention: timedelta) -> int:
    """Everything the tick prunes, in the order that frees the next step: cycle summaries past the
    retention, then the messages only they referred to (with their media), then notices past the
    retention. Returns the number of rows removed."""
    before = now - retention
    removed = await prune_cycles(conn, before, _PRUNE_SLICE)
    removed += sum(await prune_messages(conn, _PRUNE_SLICE))
    removed += await prune_notices(conn, before, _PRUNE_SLICE)
    return removed


async def prune_messages(conn: AsyncConnection, limit: int = _PRUNE_SLICE) -> tuple[int, int]:
    """Remove messages nobody can see or send any more: soft-deleted ones (deleted by the user, or
    past the history's length, see `db.messages.add`) that neither a config nor a kept cycle
    summary refers to (a running cycle keeps its message until the cycle itself is pruned), and with
    them the media files no other message refers to. One statement, so a crash never leaves a media
    row without its message: a message and its media are written together too, which is why media
    never needs a sweep of its own (that would read the whole table every tick).
    Returns (messages, media) removed."""
    cur = await conn.execute(
        """
        WITH gone AS (
            DELETE FROM messages WHERE id IN (
                SELECT m.id FROM messages m
                WHERE m.deleted_at IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM cycles c WHERE c.message_id = m.id)
                  AND NOT EXISTS (SELECT 1 FROM configs cf WHERE cf.message_id = m.id)
                ORDER BY m.deleted_at LIMIT %(limit)s
            )
            RETURNING id, media_id
        ), freed AS (
            DELETE FROM media md
            WHERE md.id IN (SELECT media_id FROM gone WHERE media_id IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM messages m
                              WHERE m.media_id = md.id AND m.id NOT IN (SELECT id FROM gone))
            RETURNING md.id
        )
        SELECT (SELECT count(*) FROM gone)::int, (SELECT count(*) FROM freed)::int
        """,
        {"limit": limit},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def prune_notices(conn: AsyncConnection, sent_before: datetime, limit: int = _PRUNE_SLICE) -> int:
    """Forget notices past the retention. Each one's cause is over by then (its cycle's summary is
    pruned too; an expiry or a revoked session is only told on the change itself), so forgetting
    one cannot make it be sent twice."""
    cur = await conn.execute(
        """
        DELETE FROM notices WHERE (owner_id, cause, ref) IN (
            SELECT owner_id, cause, ref FROM notices WHERE sent_at < %(before)s ORDER BY sent_at LIMIT %(limit)s
        )
        """,
        {"before": sent_before, "limit": limit},
    )
    return cur.rowcount
