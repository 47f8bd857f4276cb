"""Storage stays bounded (docs/runtime.md, "Pruning"; docs/reliability.md, "Media handles and pruning"):
the tick removes cycle summaries past the retention, the messages nothing shows or sends any more, media
no message refers to, and notices past the retention; the history itself keeps a bounded number of
entries."""

from __future__ import annotations

from datetime import timedelta

from psycopg import AsyncConnection, sql

from db import configs, messages, users
from db import tick as prunes
from jobs.tick import tick
from services.messages import Captured, save_current
from tests.runtime_helpers import add_message, utcnow

OWNER = 5001
OTHER = 5002


async def count(db: AsyncConnection, query: str, params: dict | None = None) -> int:
    cur = await db.execute(query, params or {})
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def ids(db: AsyncConnection, table: str) -> set[int]:
    cur = await db.execute(sql.SQL("SELECT id FROM {}").format(sql.Identifier(table)))
    return {int(r[0]) for r in await cur.fetchall()}


async def media_of(db: AsyncConnection, message_id: int) -> int:
    return await count(db, "SELECT media_id FROM messages WHERE id = %(m)s", {"m": message_id})


async def add_user(db: AsyncConnection, user_id: int) -> None:
    await users.set_access(db, user_id, status="active", expires_at=None)


async def add_cycle(db: AsyncConnection, owner_id: int, seq: int, message_id: int, *, finished_days_ago: float | None
                    ) -> int:
    at = utcnow() - timedelta(days=(finished_days_ago or 0) + 0.01)
    cur = await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, status, finished_at)
        VALUES (%(o)s, %(s)s, %(m)s, 10, %(at)s, %(at)s, %(st)s, %(fin)s) RETURNING id
        """,
        {"o": owner_id, "s": seq, "m": message_id, "at": at, "st": "running" if finished_days_ago is None else "done",
         "fin": None if finished_days_ago is None else utcnow() - timedelta(days=finished_days_ago)},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def soft_delete(db: AsyncConnection, *message_ids: int) -> None:
    await db.execute("UPDATE messages SET deleted_at = now() - interval '1 hour' WHERE id = ANY(%(ids)s)",
                     {"ids": list(message_ids)})


async def test_messages_nothing_refers_to_are_pruned_and_their_media_with_them(db, pool, settings) -> None:
    await add_user(db, OWNER)
    current = await add_message(db, OWNER, "current", kind="photo", media=b"current")
    await configs.set_message(db, OWNER, current)
    visible = await add_message(db, OWNER, "an old ad, still in the history", kind="photo", media=b"visible")
    deleted_in_use = await add_message(db, OWNER, "deleted, a running cycle sends it", kind="photo", media=b"run")
    deleted_kept_summary = await add_message(db, OWNER, "deleted, a kept summary names it")
    deleted_old_summary = await add_message(db, OWNER, "deleted, only a summary past retention names it")
    deleted_unused = await add_message(db, OWNER, "deleted, unused", kind="photo", media=b"unused")
    await soft_delete(db, deleted_in_use, deleted_kept_summary, deleted_old_summary, deleted_unused)
    await add_cycle(db, OWNER, 1, deleted_old_summary, finished_days_ago=settings.run_retention_days + 1)
    await add_cycle(db, OWNER, 2, deleted_kept_summary, finished_days_ago=1)
    await add_cycle(db, OWNER, 3, deleted_in_use, finished_days_ago=None)
    unused_media = await media_of(db, deleted_unused)
    assert await count(db, "SELECT count(*) FROM messages") == 6
    assert await count(db, "SELECT count(*) FROM media") == 4

    summary = await tick(pool, settings)

    # one cycle summary, two messages (the one only the pruned summary named, the unused one), one media
    assert summary.pruned == 4
    assert await ids(db, "messages") == {current, visible, deleted_in_use, deleted_kept_summary}
    kept_media = {await media_of(db, m) for m in (current, visible, deleted_in_use)}
    assert await ids(db, "media") == kept_media
    assert unused_media not in kept_media
    assert (await tick(pool, settings)).pruned == 0  # nothing left to do


async def test_media_goes_with_its_last_message_and_stays_while_one_refers_to_it(db) -> None:
    await add_user(db, OWNER)
    alone = await add_message(db, OWNER, "its own photo", kind="photo", media=b"alone")
    shared = await add_message(db, OWNER, "a photo", kind="photo", media=b"shared")
    shared_media = await media_of(db, shared)
    twin = await messages.add(db, OWNER, kind="photo", text="the same photo", entities=[], media_id=shared_media,
                              content_hash="twin")
    alone_media = await media_of(db, alone)
    await soft_delete(db, alone, shared)
    assert await prunes.prune_messages(db) == (2, 1)
    assert await ids(db, "messages") == {twin}
    assert await ids(db, "media") == {shared_media}  # the twin still shows it
    assert alone_media != shared_media
    await soft_delete(db, twin)
    assert await prunes.prune_messages(db) == (1, 1)
    assert await ids(db, "media") == set()


async def test_notices_past_the_retention_are_pruned(db, pool, settings) -> None:
    await add_user(db, OWNER)
    await add_user(db, OTHER)
    await db.execute(
        """
        INSERT INTO notices (owner_id, cause, ref, sent_at) VALUES
            (%(a)s, 'long_flood', '1', now() - make_interval(days => %(old)s)),
            (%(a)s, 'group_removed', '-100:1', now() - make_interval(days => %(old)s)),
            (%(a)s, 'long_flood', '2', now() - interval '1 day'),
            (%(b)s, 'expired', 'x', now())
        """,
        {"a": OWNER, "b": OTHER, "old": settings.run_retention_days + 1},
    )
    summary = await tick(pool, settings)
    assert summary.pruned == 2
    cur = await db.execute("SELECT owner_id, cause, ref FROM notices ORDER BY owner_id, ref")
    assert await cur.fetchall() == [(OWNER, "long_flood", "2"), (OTHER, "expired", "x")]


async def test_the_history_keeps_its_newest_entries_and_the_tick_removes_the_rest(db, pool, settings) -> None:
    await add_user(db, OWNER)
    extra = 4
    saved = [
        await save_current(db, OWNER, Captured("text", f"ad number {n}", []))
        for n in range(messages.HISTORY_KEEP + extra)
    ]
    assert await messages.count(db, OWNER) == messages.HISTORY_KEEP
    page = await messages.history_page(db, OWNER, offset=0, limit=messages.HISTORY_KEEP + extra)
    assert [e.id for e in page] == saved[extra:][::-1]
    # the oldest entries left the history; no summary names them, so the tick removes them
    assert await count(db, "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL") == extra
    assert (await tick(pool, settings)).pruned == extra
    assert await ids(db, "messages") == set(saved[extra:])


async def test_the_current_message_stays_however_old(db) -> None:
    await add_user(db, OWNER)
    first = await add_message(db, OWNER, "the ad in use")
    await configs.set_message(db, OWNER, first)  # e.g. chosen again from the history
    for n in range(messages.HISTORY_KEEP + 2):
        await messages.add(db, OWNER, kind="text", text=f"draft {n}", entities=[], media_id=None,
                           content_hash=str(n))
    assert await messages.count(db, OWNER) == messages.HISTORY_KEEP + 1  # the newest drafts and the ad in use
    assert await prunes.prune_messages(db) == (2, 0)  # the two oldest drafts
    assert await messages.get_owned(db, OWNER, first) is not None


async def test_each_prune_takes_a_bounded_slice(db, settings) -> None:
    await add_user(db, OWNER)
    made = [await add_message(db, OWNER, f"m{n}") for n in range(5)]
    await soft_delete(db, *made)
    assert await prunes.prune_messages(db, limit=2) == (2, 0)
    assert await prunes.prune_messages(db, limit=2) == (2, 0)
    assert await prunes.prune_messages(db, limit=2) == (1, 0)
    for n in range(3):
        await add_cycle(db, OWNER, n + 1, await add_message(db, OWNER, f"c{n}"),
                        finished_days_ago=settings.run_retention_days + 1)
    assert await prunes.prune_cycles(db, utcnow() - timedelta(days=settings.run_retention_days), limit=2) == 2
    assert await count(db, "SELECT count(*) FROM cycles") == 1


async def add_deliveries(db: AsyncConnection, cycle_id: int, owner_id: int, groups: int = 3) -> None:
    await db.execute(
        """
        INSERT INTO deliveries (cycle_id, owner_id, chat_id, position, next_attempt_at, random_id)
        SELECT %(c)s, %(o)s, -100 - n, n, now(), 1 + n FROM generate_series(0, %(g)s - 1) n
        """,
        {"c": cycle_id, "o": owner_id, "g": groups},
    )


async def test_a_cycle_takes_its_delivery_rows_with_it_and_no_others(db, settings) -> None:
    """Delivery rows follow their cycle without a per-row foreign key (migration 0013): a pruned summary
    and a deleted user's cycles remove their rows, in one statement for any number of cycles."""
    for owner in (OWNER, OTHER):
        await add_user(db, owner)
    old = [await add_cycle(db, OWNER, n + 1, await add_message(db, OWNER, f"o{n}"),
                           finished_days_ago=settings.run_retention_days + 1) for n in range(2)]
    kept = await add_cycle(db, OWNER, 3, await add_message(db, OWNER, "k"), finished_days_ago=None)
    others = await add_cycle(db, OTHER, 1, await add_message(db, OTHER, "x"), finished_days_ago=None)
    for cycle_id, owner in [(old[0], OWNER), (old[1], OWNER), (kept, OWNER), (others, OTHER)]:
        await add_deliveries(db, cycle_id, owner)

    assert await prunes.prune_cycles(db, utcnow() - timedelta(days=settings.run_retention_days)) == 2
    remaining = "SELECT cycle_id, count(*) FROM deliveries GROUP BY cycle_id ORDER BY cycle_id"
    assert await (await db.execute(remaining)).fetchall() == [(kept, 3), (others, 3)]

    await db.execute("DELETE FROM bot_users WHERE user_id = %(u)s", {"u": OWNER})
    assert await (await db.execute(remaining)).fetchall() == [(others, 3)]
