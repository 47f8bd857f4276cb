"""The tick's SQL (`POST /tick`, jobs/tick.py): due selection, cycle creation (set-wise, for all of a tick's cycles at
once), recovery and pruning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import class_row


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
    account_status: str | None  # 'active' when some account is; None: no account at all
    flood_until: datetime | None  # set only when every active account is paused: the earliest end
    has_message: bool
    selected_groups: int
    running_cycle: bool
    # The usernames this owner was resolved under as a super admin (services.access.is_super_admin).
    admin_usernames: list[str]
    # The owner's active accounts, the first first: the cycle's first job goes where the first one's
    # connection is (worker/own_queues.py).
    account_ids: list[int]

    def allowed_at(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)


@dataclass(slots=True)
class StalledCycle:
    id: int
    owner_id: int
    earliest_due: datetime | None  # None: nothing pending; the job only has to finish the cycle
    account_ids: list[int]  # the owner's accounts: a job that runs holds some of their locks


async def lock_due(
    conn: AsyncConnection, until: datetime, cap: int, exclude: list[int] | None = None,
) -> list[DueConfig]:
    """Due configs, locked for this transaction; rows another tick holds are skipped, so two ticks
    at once never both start a cycle for one config, and so are the owners in `exclude` (those an
    earlier slice of the same tick decided on). Plain on purpose (no joins): the planner then walks the
    `configs_due` partial index and stops after `cap` rows."""
    cur = conn.cursor(row_factory=class_row(DueConfig))
    await cur.execute(
        """
        SELECT owner_id, message_id, interval_minutes, next_run_at, cycle, last_scheduled_at FROM configs
        WHERE active AND next_run_at <= %(until)s AND owner_id <> ALL(%(exclude)s::bigint[])
        ORDER BY next_run_at
        LIMIT %(cap)s
        FOR UPDATE SKIP LOCKED
        """,
        {"until": until, "cap": cap, "exclude": exclude or []},
    )
    return await cur.fetchall()


async def owner_states(conn: AsyncConnection, owner_ids: list[int]) -> dict[int, OwnerState]:
    """Per owner: access, whether some account is active (and whether all of those are paused, until
    when), the message, the selected groups an active account posts to, and a running cycle."""
    cur = conn.cursor(row_factory=class_row(OwnerState))
    await cur.execute(
        """
        SELECT u.user_id AS owner_id, u.status, u.expires_at,
               CASE WHEN a.active > 0 THEN 'active'
                    WHEN a.total > 0 THEN 'revoked' END AS account_status,
               CASE WHEN a.active > 0 AND a.paused = a.active THEN a.pause_end END AS flood_until,
               (m.id IS NOT NULL AND m.deleted_at IS NULL) AS has_message,
               (SELECT count(*) FROM groups g JOIN accounts ga ON ga.id = g.account_id AND ga.status = 'active'
                WHERE g.owner_id = cf.owner_id AND g.selected)::int AS selected_groups,
               EXISTS (SELECT 1 FROM cycles c WHERE c.owner_id = cf.owner_id AND c.status = 'running')
                   AS running_cycle,
               ARRAY(SELECT au.username FROM admin_usernames au WHERE au.user_id = cf.owner_id)
                   AS admin_usernames,
               ARRAY(SELECT x.id FROM accounts x WHERE x.owner_id = cf.owner_id AND x.status = 'active'
                     ORDER BY x.id) AS account_ids
        FROM configs cf
        JOIN bot_users u ON u.user_id = cf.owner_id
        LEFT JOIN LATERAL (
            SELECT count(*) AS total,
                   count(*) FILTER (WHERE x.status = 'active') AS active,
                   count(*) FILTER (WHERE x.status = 'active' AND x.flood_until > now()) AS paused,
                   min(x.flood_until) FILTER (WHERE x.status = 'active') AS pause_end
            FROM accounts x WHERE x.owner_id = cf.owner_id
        ) a ON true
        LEFT JOIN messages m ON m.id = cf.message_id
        WHERE cf.owner_id = ANY(%(ids)s)
        """,
        {"ids": owner_ids},
    )
    return {row.owner_id: row for row in await cur.fetchall()}


@dataclass(slots=True)
class PlannedCycle:
    """One cycle the tick decided to start: the config as locked, and the times the rules gave it."""

    config: DueConfig
    scheduled_at: datetime
    run_at: datetime
    next_run_at: datetime


@dataclass(slots=True)
class CreatedCycle:
    id: int
    owner_id: int
    seq: int
    total: int


async def postpone_many(conn: AsyncConnection, postponed: list[tuple[int, datetime]]) -> None:
    """Move the clock of configs the tick skipped: (owner_id, next_run_at) pairs, one statement."""
    if not postponed:
        return
    await conn.execute(
        """
        UPDATE configs c SET next_run_at = u.at, updated_at = now()
        FROM unnest(%(ids)s::bigint[], %(ats)s::timestamptz[]) AS u(owner_id, at)
        WHERE c.owner_id = u.owner_id
        """,
        {"ids": [owner_id for owner_id, _ in postponed], "ats": [at for _, at in postponed]},
    )


# core.schedule.random_id in SQL (the same formula; tests/test_pg_hash.py holds them equal): PostgreSQL's
# built-in 64-bit hash of the delivery id seeded by the cycle id, shifted to be signed 63-bit, never 0.
RANDOM_ID_SQL = "COALESCE(NULLIF(hashint8extended({delivery}, {cycle}) >> 1, 0), 1)"


async def create_cycles(conn: AsyncConnection, plans: list[PlannedCycle]) -> list[CreatedCycle]:
    """Start the next cycle of every planned config: bump its counter, move its clock, drop the
    delivery rows of the owner's finished cycles (their summaries stay on the cycle rows), and create
    one pending delivery per selected group, each due no earlier than its group's last post + the
    interval (so a group posted late by the previous cycle is not posted again seconds later).

    Set-wise: three statements whatever the number of plans, so a tick's cost in round trips does not
    follow how many cycles are due, and the rows never travel through Python (docs/runtime.md, "Cost of
    a tick"). Call inside the tick's transaction, with each owner at most once. Returns the cycles in the
    order of `plans`; cycle ids and delivery ids are taken in that order, deliveries by position within a
    cycle, as one config at a time would have taken them."""
    if not plans:
        return []
    owners = [p.config.owner_id for p in plans]
    assert len(set(owners)) == len(owners), "one cycle per config and tick"
    assert all(p.config.message_id is not None for p in plans)
    cur = await conn.execute(
        """
        UPDATE configs c SET cycle = c.cycle + 1, last_scheduled_at = u.scheduled, next_run_at = u.next,
               updated_at = now()
        FROM unnest(%(ids)s::bigint[], %(scheduled)s::timestamptz[], %(next)s::timestamptz[])
             AS u(owner_id, scheduled, next)
        WHERE c.owner_id = u.owner_id
        RETURNING c.owner_id, c.cycle
        """,
        {"ids": owners, "scheduled": [p.scheduled_at for p in plans], "next": [p.next_run_at for p in plans]},
    )
    seqs = {int(r[0]): int(r[1]) for r in await cur.fetchall()}
    assert len(seqs) == len(plans)
    await conn.execute(
        """
        DELETE FROM deliveries d USING cycles c
        WHERE d.cycle_id = c.id AND c.owner_id = ANY(%(ids)s::bigint[]) AND c.status <> 'running'
        """,
        {"ids": owners},
    )
    # One statement, so the groups are read under one snapshot and a cycle's total is exactly its
    # delivery rows. Only groups an active account posts to: those of a logged-out or ended account sit
    # the round out. The ORDER BYs run before the ids are taken (PostgreSQL evaluates nextval after
    # sorting), so cycle ids follow `plans` and delivery ids follow cycle, then position.
    cur = await conn.execute(
        f"""
        WITH u AS (
            SELECT * FROM unnest(%(ids)s::bigint[], %(seqs)s::int[], %(msgs)s::bigint[], %(iv)s::int[],
                                 %(scheduled)s::timestamptz[], %(run_at)s::timestamptz[])
                 WITH ORDINALITY AS u(owner_id, seq, message_id, iv, scheduled, run_at, ord)
        ), g AS (
            SELECT g.owner_id, g.chat_id, g.account_id, u.ord,
                   GREATEST(u.run_at, g.last_sent_at + make_interval(mins => u.iv)) AS not_before,
                   (row_number() OVER (PARTITION BY g.owner_id ORDER BY g.added_at, g.chat_id) - 1)::int AS position
            FROM groups g JOIN u ON g.owner_id = u.owner_id
                 JOIN accounts a ON a.id = g.account_id AND a.status = 'active'
            WHERE g.selected
        ), c AS (
            INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, total)
            SELECT u.owner_id, u.seq, u.message_id, u.iv, u.scheduled, u.run_at, COALESCE(t.n, 0)
            FROM u LEFT JOIN (SELECT owner_id, count(*)::int AS n FROM g GROUP BY owner_id) t ON t.owner_id = u.owner_id
            ORDER BY u.ord
            RETURNING id, owner_id, total
        ), d AS (
            INSERT INTO deliveries (id, cycle_id, owner_id, chat_id, position, next_attempt_at, random_id,
                                    account_id)
            SELECT n.id, n.cycle_id, n.owner_id, n.chat_id, n.position, n.not_before,
                   {RANDOM_ID_SQL.format(delivery="n.id", cycle="n.cycle_id")}, n.account_id
            FROM (SELECT nextval('deliveries_id_seq') AS id, c.id AS cycle_id, g.*
                  FROM g JOIN c ON c.owner_id = g.owner_id
                  ORDER BY g.ord, g.position) n
        )
        SELECT id, owner_id, total FROM c
        """,
        {"ids": owners, "seqs": [seqs[o] for o in owners], "msgs": [p.config.message_id for p in plans],
         "iv": [p.config.interval_minutes for p in plans], "scheduled": [p.scheduled_at for p in plans],
         "run_at": [p.run_at for p in plans]},
    )
    made = {int(r[1]): (int(r[0]), int(r[2])) for r in await cur.fetchall()}
    return [CreatedCycle(made[o][0], o, seqs[o], made[o][1]) for o in owners]


async def release_expired_leases(conn: AsyncConnection, now: datetime) -> list[int]:
    """In-flight deliveries whose job died go back to pending (their random_id stays, so a resend
    of one that did reach Telegram is de-duplicated). Each may have been posted since it was claimed
    (`updated_at`, set by the claim): that is its unsure time, unless an earlier one is known.
    Returns the cycles touched."""
    # Only a running cycle has rows in flight (a cycle is finished or cancelled only once none is), so
    # the release walks the running cycles' rows by (cycle_id, chat_id) rather than the whole table.
    cur = await conn.execute(
        """
        UPDATE deliveries d SET status = 'pending', lease_until = NULL, updated_at = now(),
               unsure_since = COALESCE(d.unsure_since, d.updated_at)
        FROM cycles c
        WHERE c.status = 'running' AND d.cycle_id = c.id AND d.status = 'in_flight' AND d.lease_until < %(now)s
        RETURNING d.cycle_id
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
               min(d.next_attempt_at) FILTER (WHERE d.status = 'pending') AS earliest_due,
               ARRAY(SELECT a.id FROM accounts a WHERE a.owner_id = c.owner_id ORDER BY a.id) AS account_ids
        FROM cycles c LEFT JOIN deliveries d ON d.cycle_id = c.id
        WHERE c.status = 'running' AND c.created_at < %(before)s
        GROUP BY c.id
        HAVING count(d.id) FILTER (WHERE d.status = 'in_flight') = 0
        """,
        {"before": created_before},
    )
    return await cur.fetchall()


async def still_stalled(conn: AsyncConnection, cycle_ids: list[int]) -> set[int]:
    """Of these cycles, those still running with nothing in flight: read again after the Redis check
    found no job for them, since a batch that finished its cycle meanwhile had let go of its lock (and
    looked dead to that check) only after its finish was committed."""
    if not cycle_ids:
        return set()
    cur = await conn.execute(
        """
        SELECT c.id FROM cycles c
        WHERE c.id = ANY(%(ids)s) AND c.status = 'running'
          AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.cycle_id = c.id AND d.status = 'in_flight')
        """,
        {"ids": cycle_ids},
    )
    return {int(r[0]) for r in await cur.fetchall()}


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
