"""No pile-up (docs/runtime.md, "No pile-up"): with `skip` a group whose last message is still the
broadcast's previous post is skipped (counted as skipped, not failed); with `replace` the previous post
is deleted before the new one; Telegram's refusals are outcomes, never crashes. The real tick and send
batch against the emulator, which keeps each group's message order; time passes with `TimeTravel`."""

from __future__ import annotations

import pytest

from core import pile_up
from core.pile_up import Step
from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.runtime_helpers import TimeTravel, config_row, cycle_row, deliveries_of, make_broadcaster

INTERVAL_MIN = 3


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"claim_ahead_ms": 0}


async def round_of(db, pool, settings, ctx, clock: TimeTravel | None = None) -> int:
    """One round: (after an interval) the tick creates it and a batch sends it."""
    if clock is not None:
        await clock.advance(INTERVAL_MIN * 60 + 1)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    await run_batch(ctx, cycle_id)
    return cycle_id


async def broadcaster(db, net, settings, user_id: int, mode: str, groups: int = 2):
    b = await make_broadcaster(db, net, settings, user_id, groups=groups, interval_minutes=INTERVAL_MIN)
    await db.execute("UPDATE configs SET pile_up = %(m)s WHERE owner_id = %(o)s", {"m": mode, "o": user_id})
    return b, TimeTravel(db, user_id)


async def live_posts(net, chat_id: int) -> list[int]:
    return [m.message_id for m in await net.posted(chat_id) if not m.deleted]


async def test_skip_leaves_a_group_alone_while_the_previous_post_is_on_top(db, net, settings, pool, ctx) -> None:
    b, clock = await broadcaster(db, net, settings, 4101, "skip")
    await round_of(db, pool, settings, ctx)
    g0 = b.chat_ids[0]
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]

    second = await round_of(db, pool, settings, ctx, clock)  # nobody wrote since: both still on top
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]
    assert [(r["status"], r["reason"]) for r in await deliveries_of(db, second)] == [("skipped", "still_on_top")] * 2
    row = await cycle_row(db, second)
    assert (row["status"], row["outcome"], row["sent"], row["failed"], row["skipped"]) == ("done", "sent", 0, 0, 2)

    await net.post_as(g0, 555, "someone else's message")  # group 0 moved on, group 1 did not
    third = await round_of(db, pool, settings, ctx, clock)
    assert [len(await net.posted(c)) for c in b.chat_ids] == [3, 1]
    assert [r["status"] for r in await deliveries_of(db, third)] == ["sent", "skipped"]
    cur = await db.execute("SELECT last_message_id FROM groups WHERE owner_id = %(o)s AND chat_id = %(c)s",
                           {"o": b.user_id, "c": g0})
    assert (await cur.fetchone())[0] == (await net.posted(g0))[-1].message_id


async def test_replace_deletes_the_previous_post_then_posts(db, net, settings, pool, ctx) -> None:
    b, clock = await broadcaster(db, net, settings, 4102, "replace")
    await round_of(db, pool, settings, ctx)
    firsts = {c: (await live_posts(net, c))[0] for c in b.chat_ids}
    await net.post_as(b.chat_ids[0], 555, "a reply in between")
    second = await round_of(db, pool, settings, ctx, clock)
    for chat in b.chat_ids:
        posts = await net.posted(chat)
        mine = [m for m in posts if m.from_tg_user_id == b.tg_user_id]
        assert [m.deleted for m in mine] == [True, False]  # the previous one gone, the new one there
        assert mine[0].message_id == firsts[chat]
    assert not (await net.posted(b.chat_ids[0]))[1].deleted  # only its own message
    assert [r["status"] for r in await deliveries_of(db, second)] == ["sent", "sent"]


async def test_replace_posts_even_when_the_previous_post_cannot_be_deleted(db, net, settings, pool, ctx) -> None:
    b, clock = await broadcaster(db, net, settings, 4103, "replace")
    await round_of(db, pool, settings, ctx)
    [g0, g1] = b.chat_ids
    await net.forbid_delete(g0)  # Telegram refuses the delete in group 0
    first_g1 = (await live_posts(net, g1))[0]
    await net.redis.sadd(f"{net.p}deleted:{g1}", first_g1)  # group 1's previous post is gone already
    second = await round_of(db, pool, settings, ctx, clock)
    assert [r["status"] for r in await deliveries_of(db, second)] == ["sent", "sent"]
    assert len(await live_posts(net, g0)) == 2 and len(await live_posts(net, g1)) == 1


async def test_a_flood_wait_on_the_check_is_the_groups_outcome(db, net, settings, pool, ctx) -> None:
    b, clock = await broadcaster(db, net, settings, 4104, "skip", groups=1)
    await round_of(db, pool, settings, ctx)
    await clock.advance(INTERVAL_MIN * 60 + 1)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    await net.set_flood(b.tg_user_id, 120)
    await run_batch(ctx, cycle_id)  # the check meets the flood wait: no crash, the account pauses
    [row] = await deliveries_of(db, cycle_id)
    assert row["status"] == "pending"
    cur = await db.execute("SELECT flood_until IS NOT NULL FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    assert (await cur.fetchone())[0] is True
    assert len(await net.posted(b.chat_ids[0])) == 1


async def test_off_posts_every_round_as_before(db, net, settings, pool, ctx) -> None:
    b, clock = await broadcaster(db, net, settings, 4105, "off", groups=1)
    await round_of(db, pool, settings, ctx)
    await round_of(db, pool, settings, ctx, clock)
    assert len(await live_posts(net, b.chat_ids[0])) == 2
    assert (await config_row(db, b.user_id))["pile_up"] == "off"


@pytest.mark.parametrize(("mode", "previous", "step"), [
    ("off", 10, Step.POST), ("skip", 10, Step.CHECK_LAST), ("replace", 10, Step.DELETE_PREVIOUS),
    ("skip", None, Step.POST), ("replace", None, Step.POST), ("replace", 0, Step.POST), ("unknown", 10, Step.POST),
])
def test_the_step_before_a_post(mode: str, previous: int | None, step: Step) -> None:
    assert pile_up.step_before_post(mode, previous) is step


@pytest.mark.parametrize(("previous", "last", "on_top"), [(10, 10, True), (10, 11, False), (10, None, False)])
def test_still_on_top(previous: int, last: int | None, on_top: bool) -> None:
    assert pile_up.still_on_top(previous, last) is on_top
