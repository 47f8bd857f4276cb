"""Several Telegram accounts per user, in the runtime (docs/runtime.md, "Accounts"): each group is posted
to from its own account; each account has its own lock, connection and flood pause, and sends its share
of a round at the same time as the others; losing one account stops only its groups."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

from db import accounts
from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.harness import message_keys
from tests.runtime_helpers import (
    GROUP_BASE,
    Broadcaster,
    config_row,
    cycle_row,
    deliveries_of,
    fake_login,
    make_broadcaster,
    make_due,
    store_account,
    utcnow,
)
from worker import queues


async def add_account(db, net, settings, b: Broadcaster, n: int, groups: int) -> tuple[int, int, list[int]]:
    """Another logged-in account of `b`'s user with `groups` groups of its own in the list. Returns
    (account id, Telegram user id, chat ids)."""
    phone = f"+99891{b.user_id % 100_000:05d}{n:02d}"
    chat_ids = [GROUP_BASE - b.user_id * 100 - 50 - n * 10 - k for k in range(groups)]
    listed = [(chat_id, f"Group {n}.{k}", 100 + n * 10 + k) for k, chat_id in enumerate(chat_ids)]
    tg_user_id, session = await fake_login(net, phone, listed)
    account_id = await store_account(db, settings, b.user_id, tg_user_id, phone, session, listed)
    return account_id, tg_user_id, chat_ids


async def start_cycle(pool, settings) -> int:
    summary = await tick(pool, settings)
    assert len(summary.cycle_ids) == 1, summary
    return summary.cycle_ids[0]


async def senders(net, chat_ids: list[int]) -> dict[int, set[int]]:
    """Per group, the Telegram accounts that posted there."""
    return {c: {p.from_tg_user_id for p in await net.posted(c)} for c in chat_ids}


async def test_each_group_is_posted_from_its_own_account(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 5101, groups=2)
    second, second_tg, second_chats = await add_account(db, net, settings, b, 1, groups=2)
    cycle_id = await start_cycle(pool, settings)
    rows = await deliveries_of(db, cycle_id)
    assert {r["chat_id"]: r["account_id"] for r in rows} == {
        **{c: b.account_id for c in b.chat_ids}, **{c: second for c in second_chats}}

    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "finished" and result.sent == 4
    assert await senders(net, b.chat_ids + second_chats) == {
        **{c: {b.tg_user_id} for c in b.chat_ids}, **{c: {second_tg} for c in second_chats}}
    # Each account's connection is kept under its own account id.
    assert b.account_id in ctx.senders and second in ctx.senders
    assert not await ctx.redis.exists(queues.account_lock_key(settings, b.account_id),
                                      queues.account_lock_key(settings, second))


async def test_accounts_send_their_shares_at_once(db, net, settings, pool, ctx) -> None:
    """Three accounts of four groups each, with a 400 ms pause between two sends of one account: one
    account alone would take eleven pauses (4.4 s); three at once take three (1.2 s)."""
    s = settings.model_copy(update={"send_pause_min_ms": 400, "send_pause_max_ms": 400})
    ctx.settings = s
    b = await make_broadcaster(db, net, s, 5102, groups=4)
    chats = list(b.chat_ids)
    for n in (1, 2):
        chats += (await add_account(db, net, s, b, n, groups=4))[2]
    cycle_id = await start_cycle(pool, s)
    began = time.monotonic()
    result = await run_batch(ctx, cycle_id)
    took = time.monotonic() - began
    assert result.outcome == "finished" and result.sent == 12
    assert took < 3.5, took
    # Each account is paced on its own: its own sends are never closer than the pause.
    posts = [p for c in chats for p in await net.posted(c)]
    for tg_user in {p.from_tg_user_id for p in posts}:
        times = sorted(p.at for p in posts if p.from_tg_user_id == tg_user)
        assert len(times) == 4
        assert all(later - earlier >= 0.38 for earlier, later in itertools.pairwise(times))


async def test_a_flood_pauses_only_its_account(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 5103, groups=2)
    second, _, second_chats = await add_account(db, net, settings, b, 1, groups=2)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "FLOOD_WAIT_600")
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "continued"
    rows = {r["chat_id"]: r for r in await deliveries_of(db, cycle_id)}
    assert {rows[c]["status"] for c in second_chats} == {"sent"}
    assert {rows[c]["status"] for c in b.chat_ids} == {"pending"}
    cur = await db.execute("SELECT id, flood_until FROM accounts WHERE owner_id = %(o)s ORDER BY id", {"o": b.user_id})
    pauses = dict(await cur.fetchall())
    assert pauses[second] is None and pauses[b.account_id] > utcnow() + timedelta(seconds=590)
    # The continuation waits for the pause: nothing else is left to send.
    assert (await cycle_row(db, cycle_id))["last_continuation"] == "flood"


async def test_a_paused_account_does_not_hold_the_others(db, net, settings, pool, ctx) -> None:
    """An account already paused when the batch starts is skipped; the others send their share."""
    b = await make_broadcaster(db, net, settings, 5104, groups=2)
    _, _, second_chats = await add_account(db, net, settings, b, 1, groups=2)
    await db.execute("UPDATE accounts SET flood_until = now() + interval '5 minutes' WHERE id = %(a)s",
                     {"a": b.account_id})  # ends before the next round (10 minutes): its share waits for it
    cycle_id = await start_cycle(pool, settings)
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "continued" and result.sent == 2
    rows = {r["chat_id"]: r["status"] for r in await deliveries_of(db, cycle_id)}
    assert {rows[c] for c in second_chats} == {"sent"} and {rows[c] for c in b.chat_ids} == {"pending"}


async def test_a_pause_past_the_next_round_gives_up_that_accounts_share(db, net, settings, pool, ctx) -> None:
    """Waiting an hour for one account would hold the round open, and every other account's next
    rounds with it: its share of this round is cancelled and the round finishes with the others."""
    b = await make_broadcaster(db, net, settings, 5108, groups=2)
    _, _, second_chats = await add_account(db, net, settings, b, 1, groups=2)
    await db.execute("UPDATE accounts SET flood_until = now() + interval '1 hour' WHERE id = %(a)s",
                     {"a": b.account_id})
    cycle_id = await start_cycle(pool, settings)
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("finished", 2)
    rows = {r["chat_id"]: (r["status"], r["reason"]) for r in await deliveries_of(db, cycle_id)}
    assert {rows[c] for c in second_chats} == {("sent", None)}
    assert {rows[c] for c in b.chat_ids} == {("cancelled", "account_paused")}


async def test_every_account_paused_defers_the_batch_as_one_account_did(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 5105, groups=1)
    await add_account(db, net, settings, b, 1, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await db.execute("UPDATE accounts SET flood_until = now() + interval '10 minutes' WHERE owner_id = %(o)s",
                     {"o": b.user_id})
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "deferred" and result.continuation == "flood"


async def test_losing_one_account_stops_only_its_groups_and_names_it(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 5106, groups=2)
    second, second_tg, second_chats = await add_account(db, net, settings, b, 1, groups=3)
    cycle_id = await start_cycle(pool, settings)
    await net.revoke_sessions(second_tg)
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "finished" and result.sent == 2
    rows = {r["chat_id"]: r for r in await deliveries_of(db, cycle_id)}
    assert {rows[c]["status"] for c in b.chat_ids} == {"sent"}
    assert {(rows[c]["status"], rows[c]["reason"]) for c in second_chats} == {("cancelled", "session_ended")}
    cur = await db.execute("SELECT id, status FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    assert dict(await cur.fetchall()) == {b.account_id: "active", second: "revoked"}
    assert (await config_row(db, b.user_id))["active"] is True
    [notice] = botapi.messages(b.user_id)
    assert message_keys(notice["text"]) == {"notices.account_ended"}
    assert "3" in notice["text"]  # how many groups sit out
    assert [[k["callback_data"] for k in row] for row in notice["reply_markup"]["inline_keyboard"]] == [["accounts"]]
    assert second not in ctx.senders

    # The next round leaves that account's groups out; the others go on.
    await make_due(db, b.user_id, utcnow() + timedelta(minutes=11))
    summary = await tick(pool, settings, utcnow() + timedelta(minutes=11))
    [next_cycle] = summary.cycle_ids
    assert {r["chat_id"] for r in await deliveries_of(db, next_cycle)} == set(b.chat_ids)


async def test_a_logged_out_accounts_pending_posts_are_cancelled_not_left(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 5107, groups=1)
    second, _, second_chats = await add_account(db, net, settings, b, 1, groups=2)
    cycle_id = await start_cycle(pool, settings)
    assert await accounts.delete(db, b.user_id, second) is not None
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "finished" and result.sent == 1
    rows = {r["chat_id"]: r for r in await deliveries_of(db, cycle_id)}
    assert {(rows[c]["status"], rows[c]["reason"]) for c in second_chats} == {("cancelled", "no_account")}
    cur = await db.execute("SELECT account_id FROM groups WHERE owner_id = %(o)s AND chat_id = ANY(%(c)s)",
                           {"o": b.user_id, "c": second_chats})
    assert {r[0] for r in await cur.fetchall()} == {None}  # still in the list, with no account


async def test_a_lock_held_on_one_account_lets_the_others_send(db, net, settings, pool, ctx, redis) -> None:
    b = await make_broadcaster(db, net, settings, 5108, groups=1)
    _, _, second_chats = await add_account(db, net, settings, b, 1, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await redis.set(queues.account_lock_key(settings, b.account_id), "someone-else", px=60_000)
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "continued" and result.sent == 1
    rows = {r["chat_id"]: r["status"] for r in await deliveries_of(db, cycle_id)}
    assert rows == {b.chat_ids[0]: "pending", second_chats[0]: "sent"}
    assert await redis.get(queues.account_lock_key(settings, b.account_id)) == b"someone-else"


async def test_a_pause_that_is_over_gives_up_nothing_in_a_round_running_late(db, net, settings, pool, ctx) -> None:
    """The round's next one is long due (it runs late) and the pause ended a minute ago, after that due
    time: nothing is paused now, so nothing is given up (found by the spacing property test)."""
    b = await make_broadcaster(db, net, settings, 5109, groups=2)
    await add_account(db, net, settings, b, 1, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await db.execute("UPDATE cycles SET scheduled_at = now() - interval '30 minutes' WHERE id = %(c)s",
                     {"c": cycle_id})
    await db.execute("UPDATE accounts SET flood_until = now() - interval '1 minute' WHERE owner_id = %(o)s",
                     {"o": b.user_id})
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("finished", 3)
