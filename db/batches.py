"""What a send batch reads and writes when it starts, each step in one round trip.

Before its first send a batch needs ~10 statements (the cycle, the staleness reads, the account, the start
mark, the claim's two statements, the message, the targets). Sent one by one, each would be a wake-up of a
backend and of the worker's event loop; with hundreds of batches a second at full load those round trips
would be a large share of both processes' CPU. So they are sent together in psycopg's pipeline mode: one
network exchange per step, and each statement still commits on its own (the pool's connections are in
autocommit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.deliveries import Target
from db.rows import Account, BotUser, Config, Cycle, Delivery, Message

_OWNER = "(SELECT owner_id FROM cycles WHERE id = %(cycle)s)"

# The claim's statements. First, every pending delivery of the cycle is pushed to its group's last
# post + the interval where that is later: the spacing was applied when the cycle was created, and this
# re-applies it from the groups' actual send times, so no path (a cancelled cycle's late send, a clock
# edit) can bring two posts in one group closer than the interval. Then at most `limit` rows due by
# `due_by` are taken per account, in the order they fall due; rows another job is claiming are skipped,
# so two jobs for one cycle never hold the same delivery.
# Pending deliveries whose account is gone or ended (logged out, revoked, moved to another user) are
# cancelled first: no job would ever claim them, and the round must be able to finish.
_CANCEL_ORPHANS = """
    UPDATE deliveries d SET status = 'cancelled', reason = 'no_account', lease_until = NULL, updated_at = now()
    WHERE d.cycle_id = %(cycle)s AND d.status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = d.account_id AND a.status = 'active')
"""
_CLAIM_SPACING = """
    UPDATE deliveries d SET next_attempt_at = g.last_sent_at + make_interval(mins => c.interval_minutes)
    FROM cycles c, groups g
    WHERE d.cycle_id = %(cycle)s AND d.status = 'pending' AND c.id = d.cycle_id
      AND g.owner_id = d.owner_id AND g.chat_id = d.chat_id
      AND g.last_sent_at + make_interval(mins => c.interval_minutes) > d.next_attempt_at
"""
_CLAIM = """
    UPDATE deliveries SET status = 'in_flight', lease_until = %(lease)s, updated_at = now()
    WHERE id IN (
        SELECT id FROM deliveries
        WHERE cycle_id = %(cycle)s AND account_id = %(account)s AND status = 'pending'
          AND next_attempt_at <= %(due_by)s
        ORDER BY next_attempt_at, position
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
"""


@dataclass(slots=True)
class BatchView:
    cycle: Cycle | None
    user: BotUser | None
    config: Config | None
    accounts: list[Account]  # the owner's, the first first


async def view(conn: AsyncConnection, cycle_id: int) -> BatchView:
    """The cycle and its owner's user row, config and accounts, as the staleness rules need them
    (docs/runtime.md, "Staleness"), in one round trip."""
    async with conn.pipeline():
        cycle = conn.cursor(row_factory=class_row(Cycle))
        await cycle.execute("SELECT * FROM cycles WHERE id = %(cycle)s", {"cycle": cycle_id})
        user = conn.cursor(row_factory=class_row(BotUser))
        await user.execute(f"SELECT * FROM bot_users WHERE user_id = {_OWNER}", {"cycle": cycle_id})
        config = conn.cursor(row_factory=class_row(Config))
        await config.execute(f"SELECT * FROM configs WHERE owner_id = {_OWNER}", {"cycle": cycle_id})
        account = conn.cursor(row_factory=class_row(Account))
        await account.execute(f"SELECT * FROM accounts WHERE owner_id = {_OWNER} ORDER BY id", {"cycle": cycle_id})
    return BatchView(await cycle.fetchone(), await user.fetchone(), await config.fetchone(), await account.fetchall())


async def accounts_of(conn: AsyncConnection, owner_id: int) -> list[Account]:
    """The owner's accounts as they are now (read again once their locks are held)."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute("SELECT * FROM accounts WHERE owner_id = %(owner)s ORDER BY id", {"owner": owner_id})
    return await cur.fetchall()


@dataclass(slots=True)
class Started:
    lag_ms: int | None  # None when an earlier batch already started the cycle
    claimed: dict[int, list[Delivery]]  # per account id, each in the order they fall due
    message: Message | None
    targets: dict[int, Target]


async def start(
    conn: AsyncConnection, cycle: Cycle, *, now: datetime, due_by: datetime, lease_until: datetime, limit: int,
    account_ids: list[int],
) -> Started:
    """Mark the cycle started (first batch only), cancel what no account can send any more, claim up to
    `limit` deliveries due by `due_by` for each of these accounts (the spacing re-check first, see
    `_CLAIM`), and read the message and how to address the claimed groups: one round trip. A media
    file's bytes are read by the send that uploads it (only when the cycle has no media handle yet)."""
    params = {"cycle": cycle.id, "at": now, "due_by": due_by, "lease": lease_until, "limit": limit,
              "message": cycle.message_id, "owner": cycle.owner_id}
    async with conn.pipeline():
        started = await conn.execute(
            """
            UPDATE cycles SET started_at = %(at)s,
                   lag_ms = GREATEST(0, (extract(epoch FROM %(at)s - scheduled_at) * 1000)::int)
            WHERE id = %(cycle)s AND started_at IS NULL
            RETURNING lag_ms
            """,
            params,
        )
        await conn.execute(_CANCEL_ORPHANS, params)
        await conn.execute(_CLAIM_SPACING, params)
        claims = []
        for account_id in account_ids:
            claimed = conn.cursor(row_factory=class_row(Delivery))
            await claimed.execute(_CLAIM, {**params, "account": account_id})
            claims.append((account_id, claimed))
        message = conn.cursor(row_factory=class_row(Message))
        await message.execute("SELECT * FROM messages WHERE id = %(message)s", params)
        # The groups of the rows this claim took: those of the cycle holding this batch's lease. Found
        # through the cycle's rows, never through a status index (docs/runtime.md, "Queue upkeep").
        targets = conn.cursor(row_factory=class_row(Target))
        await targets.execute(
            """
            SELECT g.chat_id, g.kind, g.access_hash, g.topic_id, g.last_message_id, cf.pile_up
            FROM deliveries d JOIN groups g ON g.owner_id = d.owner_id AND g.chat_id = d.chat_id
                 JOIN configs cf ON cf.owner_id = d.owner_id
            WHERE d.cycle_id = %(cycle)s AND d.lease_until = %(lease)s
            """,
            params,
        )
    lag = await started.fetchone()
    per_account: dict[int, list[Delivery]] = {}
    for account_id, claimed in claims:
        rows = sorted(await claimed.fetchall(), key=lambda d: (d.next_attempt_at, d.position))
        if rows:
            per_account[account_id] = rows
    return Started(
        int(lag[0]) if lag else None, per_account, await message.fetchone(),
        {t.chat_id: t for t in await targets.fetchall()},
    )
