"""The tick writes all of its cycles at once (`db.tick.create_cycles`, `postpone_many`): the rows
are exactly those one config at a time would give, and the number of statements does not follow the
number of due configs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import AsyncConnection

from core.schedule import cycle_jitter_ms, random_id
from jobs.tick import tick
from tests.runtime_helpers import config_row, utcnow

JITTER = 15_000


@dataclass
class Owner:
    user_id: int
    interval: int
    message_id: int
    next_run_at: datetime
    # (chat_id, selected, last_sent_at), in the order the groups were added
    groups: list[tuple[int, bool, datetime | None]]


async def add_owner(
    db: AsyncConnection, user_id: int, *, groups: int, interval: int, next_run_at: datetime,
    last_sent: dict[int, datetime] | None = None, unselected: int = 0,
) -> Owner:
    """A broadcast-ready owner written straight into the tables the tick reads (no login: the tick
    never opens the session)."""
    last_sent = last_sent or {}
    await db.execute("INSERT INTO bot_users (user_id, status) VALUES (%(u)s, 'active')", {"u": user_id})
    cur = await db.execute(
        "INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc) VALUES (%(u)s, %(u)s, '+1', '\\x00')"
        " RETURNING id",
        {"u": user_id},
    )
    account = await cur.fetchone()
    assert account is not None
    account_id = account[0]
    cur = await db.execute(
        "INSERT INTO messages (owner_id, kind, text, content_hash) VALUES (%(u)s, 'text', 'hi', 'h') RETURNING id",
        {"u": user_id},
    )
    row = await cur.fetchone()
    assert row is not None
    message_id = int(row[0])
    added = []
    for n in range(groups + unselected):
        # chat ids that do not sort like the order they were added in: the position follows added_at
        chat_id = -(user_id * 100) - (n * 37 % (groups + unselected))
        selected = n < groups
        at = last_sent.get(n)
        await db.execute(
            """
            INSERT INTO groups (owner_id, chat_id, title, kind, selected, last_sent_at, added_at, account_id)
            VALUES (%(o)s, %(c)s, 'g', 'supergroup', %(s)s, %(l)s, now() + make_interval(secs => %(n)s), %(a)s)
            """,
            {"o": user_id, "c": chat_id, "s": selected, "l": at, "n": n, "a": account_id},
        )
        added.append((chat_id, selected, at))
    await db.execute(
        """
        INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at)
        VALUES (%(u)s, %(m)s, %(iv)s, true, %(at)s)
        """,
        {"u": user_id, "m": message_id, "iv": interval, "at": next_run_at},
    )
    return Owner(user_id, interval, message_id, next_run_at, added)


async def add_cycle(db: AsyncConnection, owner: Owner, *, seq: int, status: str, deliveries: int) -> int:
    cur = await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, status, total)
        VALUES (%(o)s, %(s)s, %(m)s, %(iv)s, now() - interval '1 hour', now() - interval '1 hour', %(st)s, %(n)s)
        RETURNING id
        """,
        {"o": owner.user_id, "s": seq, "m": owner.message_id, "iv": owner.interval, "st": status, "n": deliveries},
    )
    row = await cur.fetchone()
    assert row is not None
    cycle_id = int(row[0])
    for pos, (chat_id, _, _) in enumerate(owner.groups[:deliveries]):
        await db.execute(
            """
            INSERT INTO deliveries (cycle_id, owner_id, chat_id, position, next_attempt_at, random_id, status)
            VALUES (%(c)s, %(o)s, %(ch)s, %(p)s, now(), 1, %(st)s)
            """,
            {"c": cycle_id, "o": owner.user_id, "ch": chat_id, "p": pos,
             "st": "sent" if status == "done" else "pending"},
        )
    await db.execute(
        "UPDATE configs SET cycle = %(s)s, last_scheduled_at = now() - interval '1 hour' WHERE owner_id = %(o)s",
        {"s": seq, "o": owner.user_id},
    )
    return cycle_id


async def rows(db: AsyncConnection, query: str, params: dict | None = None) -> list[tuple]:
    cur = await db.execute(query, params)
    return list(await cur.fetchall())


@pytest.mark.parametrize("settings_overrides", [{"jitter_max_ms": JITTER}])
async def test_many_due_configs_get_exactly_the_rows_of_one_config_at_a_time(db, settings, pool) -> None:
    now = utcnow()
    owners: list[Owner] = []
    for i in range(52):
        interval = 5 + (i % 3) * 5
        # Some groups were posted within the spacing window (their delivery waits), some long ago.
        last_sent = {0: now - timedelta(minutes=2), 1: now - timedelta(days=1)} if i % 5 == 0 else {}
        if i % 6 == 1:
            last_sent[i % 4] = now - timedelta(minutes=interval) + timedelta(seconds=40)
        owners.append(await add_owner(
            db, 7000 + i, groups=1 + i % 7, interval=interval, unselected=1 if i % 4 == 0 else 0,
            next_run_at=now - timedelta(seconds=60 - i), last_sent=last_sent,
        ))
    # A finished previous cycle: its delivery rows go when the next cycle starts, its summary stays.
    finished = {o.user_id: await add_cycle(db, o, seq=1, status="done", deliveries=len(o.groups))
                for o in owners[3::10]}
    # Two that are skipped: one with its previous cycle still running, one paused by a flood wait.
    running = await add_cycle(db, owners[50], seq=1, status="running", deliveries=1)
    flood_until = now + timedelta(minutes=7)
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE owner_id = %(o)s",
                     {"t": flood_until, "o": owners[51].user_id})
    planned, skipped = owners[:50], owners[50:]

    summary = await tick(pool, settings, now)

    assert summary.skipped == {"previous_cycle_running": 1, "flood_pause": 1}
    assert summary.enqueued == 50
    cycles = await rows(db, """
        SELECT id, owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, total, status
        FROM cycles WHERE id <> ALL(%(old)s) ORDER BY id""", {"old": [*finished.values(), running]})
    assert summary.cycle_ids == [c[0] for c in cycles]
    expected_cycles = []
    for o in planned:  # due order: the oldest next_run_at first, as the tick locks them
        seq = 2 if o.user_id in finished else 1
        run_at = o.next_run_at + timedelta(milliseconds=cycle_jitter_ms(o.user_id, seq, JITTER))
        total = sum(1 for _, selected, _ in o.groups if selected)
        expected_cycles.append((o.user_id, seq, o.message_id, o.interval, o.next_run_at, run_at, total, "running"))
    assert [c[1:] for c in cycles] == expected_cycles

    deliveries = await rows(db, """
        SELECT id, cycle_id, owner_id, chat_id, position, next_attempt_at, random_id, status, retry
        FROM deliveries WHERE cycle_id = ANY(%(ids)s) ORDER BY id""", {"ids": summary.cycle_ids})
    expected = []
    spaced = 0
    for (cycle_id, *_), o in zip(cycles, planned, strict=True):
        run_at = o.next_run_at + timedelta(milliseconds=cycle_jitter_ms(o.user_id, 2 if o.user_id in finished else 1,
                                                                        JITTER))
        selected = [(chat_id, last) for chat_id, sel, last in o.groups if sel]
        for pos, (chat_id, last) in enumerate(selected):
            not_before = max(run_at, last + timedelta(minutes=o.interval)) if last else run_at
            expected.append((cycle_id, o.user_id, chat_id, pos, not_before))
            spaced += not_before > run_at
    # Delivery ids are taken in the order one config at a time would take them: consecutive, by cycle
    # then position; each random_id is the one derived from its id (a crash-resend relies on it).
    first = deliveries[0][0]
    assert [d[0] for d in deliveries] == list(range(first, first + len(expected)))
    assert [d[1:6] for d in deliveries] == expected
    assert [d[6] for d in deliveries] == [random_id(d[0], d[1]) for d in deliveries]
    assert {(d[7], d[8]) for d in deliveries} == {("pending", 0)}
    assert spaced > 5  # the spacing did hold some deliveries back

    for o in planned:
        config = await config_row(db, o.user_id)
        seq = 2 if o.user_id in finished else 1
        assert (config["cycle"], config["last_scheduled_at"]) == (seq, o.next_run_at)
        assert config["next_run_at"] == max(o.next_run_at + timedelta(minutes=o.interval), now)
    # The finished cycles lost their delivery rows, not their summaries; the running one kept both.
    old = await rows(db, "SELECT cycle_id, count(*) FROM deliveries WHERE cycle_id <> ALL(%(ids)s) GROUP BY cycle_id",
                     {"ids": summary.cycle_ids})
    assert dict(old) == {running: 1}
    assert len(await rows(db, "SELECT 1 FROM cycles WHERE id = ANY(%(ids)s)", {"ids": list(finished.values())})) \
        == len(finished)
    waiting, flooded = skipped
    assert (await config_row(db, waiting.user_id))["next_run_at"] == now + timedelta(minutes=waiting.interval)
    assert (await config_row(db, flooded.user_id))["next_run_at"] == flood_until
    assert (await config_row(db, flooded.user_id))["cycle"] == 0


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        execute, executemany = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany

        async def counted_execute(cur, query, params=None, **kw):
            self.count += 1
            return await execute(cur, query, params, **kw)

        async def counted_executemany(cur, query, params_seq, **kw):
            params_seq = list(params_seq)
            self.count += len(params_seq)
            return await executemany(cur, query, params_seq, **kw)

        monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted_execute)
        monkeypatch.setattr(psycopg.AsyncCursor, "executemany", counted_executemany)


async def test_statements_per_tick_do_not_grow_with_the_due_configs(db, settings, pool, monkeypatch) -> None:
    now = utcnow()
    later = now + timedelta(minutes=5)  # the first tick's configs are not due again yet
    few = [await add_owner(db, 8000 + i, groups=2, interval=10, next_run_at=now - timedelta(seconds=1))
           for i in range(5)]
    many = [await add_owner(db, 8100 + i, groups=1 + i % 4, interval=10, next_run_at=later) for i in range(50)]
    # one skipped config in each tick, so the postponing is counted too
    await add_owner(db, 8900, groups=0, interval=10, next_run_at=now - timedelta(seconds=1))
    # The pool opens a connection for each slice running at once and one for the recovery beside them,
    # and setting one up costs statements of its own (db/pool.py): opened before counting, so both ticks
    # count only their own.
    async with pool.connection(), pool.connection(), pool.connection():
        pass
    counter = StatementCounter()
    counter.install(monkeypatch)

    first = await tick(pool, settings, now)
    few_count = counter.count
    await db.execute("UPDATE configs SET next_run_at = %(t)s WHERE owner_id = 8900", {"t": later})
    counter.count = 0
    second = await tick(pool, settings, later)
    many_count = counter.count

    assert (first.enqueued, first.skipped) == (len(few), {"no_groups": 1})
    assert (second.enqueued, second.skipped) == (len(many), {"no_groups": 1})
    assert few_count == many_count, (few_count, many_count)


async def test_the_recovery_runs_beside_the_slices_not_after_them(db, settings, pool, monkeypatch) -> None:
    """The slices' cycle creation waits here until the recovery has released the expired leases: were
    the recovery still run after the slices, this tick could never finish."""
    from db import tick as sql

    now = utcnow()
    await add_owner(db, 8950, groups=2, interval=10, next_run_at=now - timedelta(seconds=1))
    recovery_began = asyncio.Event()
    release, create = sql.release_expired_leases, sql.create_cycles

    async def releasing(conn, at):
        recovery_began.set()
        return await release(conn, at)

    async def creating(conn, plans):
        await asyncio.wait_for(recovery_began.wait(), 10)
        return await create(conn, plans)

    monkeypatch.setattr(sql, "release_expired_leases", releasing)
    monkeypatch.setattr(sql, "create_cycles", creating)
    summary = await tick(pool, settings, now)
    assert summary.enqueued == 1 and recovery_began.is_set()
