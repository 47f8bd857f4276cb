"""Never twice in a row (docs/runtime.md, "Interval lower bound"): per group, two posts of one broadcast
are at least the interval apart, measured on the times the emulator received them; a cycle held past
its slot pushes the next one instead of being followed by it seconds later.

Time is made to pass with `TimeTravel` (every stored time of the owner moves back), so minutes of
schedule run in milliseconds and the real tick (`tick`) and worker body (`run_batch`) decide
everything. The property test draws patterns of pauses, outages and restarts from a fixed,
derandomized profile with the boundary patterns written in."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.runtime_helpers import (
    TimeTravel,
    config_row,
    cycle_row,
    deliveries_of,
    make_broadcaster,
    utcnow,
)

INTERVAL_S = 60


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    # Deliveries not yet due are left unclaimed instead of awaited in real time (tests travel in time).
    return {"claim_ahead_ms": 0}


@dataclass
class Posts:
    """Every post the emulator received, on the test's timeline (real time + travelled offset)."""

    net: object
    chat_ids: list[int]
    clock: TimeTravel
    seen: dict[int, int] = field(default_factory=dict)
    times: dict[int, list[float]] = field(default_factory=dict)
    keys: dict[int, list[int]] = field(default_factory=dict)  # random ids, to spot duplicates

    async def collect(self) -> None:
        for chat_id in self.chat_ids:
            posted = await self.net.posted(chat_id)  # type: ignore[attr-defined]
            for post in posted[self.seen.get(chat_id, 0):]:
                self.times.setdefault(chat_id, []).append(post.at + self.clock.offset)
                self.keys.setdefault(chat_id, []).append(post.random_id)
            self.seen[chat_id] = len(posted)

    def gaps(self) -> list[float]:
        found = []
        for times in self.times.values():
            ordered = sorted(times)
            found += [b - a for a, b in itertools.pairwise(ordered)]
        return found

    def count(self, chat_id: int) -> int:
        return len(self.times.get(chat_id, []))


async def running_cycles(db, owner_id: int) -> list[int]:
    cur = await db.execute("SELECT id FROM cycles WHERE owner_id = %(o)s AND status = 'running' ORDER BY id",
                           {"o": owner_id})
    return [int(r[0]) for r in await cur.fetchall()]


async def work(ctx, db, owner_id: int, posts: Posts) -> None:
    """What a worker does when the jobs of the owner's running cycles come due."""
    for cycle_id in await running_cycles(db, owner_id):
        await run_batch(ctx, cycle_id)
    await posts.collect()


async def broadcaster(db, net, settings, user_id: int, groups: int = 3):
    b = await make_broadcaster(db, net, settings, user_id, groups=groups, interval_minutes=1)
    clock = TimeTravel(db, b.user_id)
    return b, clock, Posts(net, b.chat_ids, clock)


def assert_spaced(posts: Posts) -> None:
    assert posts.gaps(), "the scenario must post some group twice"
    assert min(posts.gaps()) >= INTERVAL_S, sorted(posts.gaps())[:5]


@pytest.mark.parametrize("settings_overrides", [{"claim_ahead_ms": 0, "batch_size": 1}])
async def test_flood_pause_across_a_cycle_boundary_does_not_post_twice(db, net, settings, pool, ctx) -> None:
    b, clock, posts = await broadcaster(db, net, settings, 3101)
    [first] = (await tick(pool, settings)).cycle_ids
    await work(ctx, db, b.user_id, posts)  # group 0 posted (one delivery per batch here)
    await net.fail_next(b.tg_user_id, "FLOOD_WAIT_45")
    await work(ctx, db, b.user_id, posts)  # group 1 meets a 45 s flood wait: the account pauses
    assert [posts.count(c) for c in b.chat_ids] == [1, 0, 0]
    # The flood pause ends at +45 s; cycle 1 finishes at +50 s, past nothing yet. Cycle 2's slot is +60 s.
    await clock.advance(50)
    for _ in range(2):
        await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [1, 1, 1]
    assert (await cycle_row(db, first))["status"] != "running"
    await clock.advance(15)  # +65 s: cycle 2 is due, but groups 1 and 2 were posted 15 s ago
    [second] = (await tick(pool, settings)).cycle_ids
    for _ in range(3):
        await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [2, 1, 1]
    rows = await deliveries_of(db, second)
    assert [r["status"] for r in rows] == ["sent", "pending", "pending"]
    await clock.advance(50)  # +115 s: 65 s after their first post
    for _ in range(2):
        await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [2, 2, 2]
    assert_spaced(posts)


async def test_a_slow_mode_wait_pushes_that_groups_next_post(db, net, settings, pool, ctx) -> None:
    b, clock, posts = await broadcaster(db, net, settings, 3102)
    [first] = (await tick(pool, settings)).cycle_ids
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_40")  # group 0 must wait 40 s
    await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [0, 1, 1]
    await clock.advance(41)
    await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [1, 1, 1]
    await clock.advance(20)  # +61 s: cycle 2; group 0 was posted 20 s ago
    [second] = (await tick(pool, settings)).cycle_ids
    await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [1, 2, 2]
    [pending] = [r for r in await deliveries_of(db, second) if r["status"] == "pending"]
    group0_last = (await cycle_row(db, first))["finished_at"]
    assert pending["next_attempt_at"] >= group0_last + timedelta(seconds=INTERVAL_S) - timedelta(seconds=1)
    await clock.advance(45)
    await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [2, 2, 2]
    assert_spaced(posts)


async def test_a_worker_down_for_two_intervals_does_not_burst(db, net, settings, pool, ctx) -> None:
    b, clock, posts = await broadcaster(db, net, settings, 3103)
    [first] = (await tick(pool, settings)).cycle_ids
    await work(ctx, db, b.user_id, posts)  # cycle 1 posted at 0 s
    await clock.advance(61)
    [second] = (await tick(pool, settings)).cycle_ids  # cycle 2 at 61 s, but no worker runs it
    for _ in range(2):
        await clock.advance(60)
        summary = await tick(pool, settings)
        assert summary.cycle_ids == [] and summary.skipped == {"previous_cycle_running": 1}
    await work(ctx, db, b.user_id, posts)  # the worker is back at 181 s: cycle 2 goes out now
    assert [posts.count(c) for c in b.chat_ids] == [2, 2, 2]
    assert (await cycle_row(db, second))["outcome"] == "sent"
    await clock.advance(5)  # 186 s: the stored next start has long passed, yet no post before 241 s
    summary = await tick(pool, settings)
    for cycle_id in summary.cycle_ids:
        await work(ctx, db, b.user_id, posts)
        assert [r["status"] for r in await deliveries_of(db, cycle_id)] == ["pending"] * 3
    await clock.advance(60)
    await tick(pool, settings)
    await work(ctx, db, b.user_id, posts)
    assert [posts.count(c) for c in b.chat_ids] == [3, 3, 3]
    assert first != second
    assert_spaced(posts)


async def test_the_tick_never_trusts_a_stored_next_start_alone(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3104, groups=2, interval_minutes=5)
    [first] = (await tick(pool, settings)).cycle_ids
    scheduled = (await cycle_row(db, first))["scheduled_at"]
    # Someone (an old release, a hand edit) stored a next start 11 s before the interval allows.
    early = scheduled + timedelta(minutes=5) - timedelta(seconds=11)
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now() WHERE id = %(c)s", {"c": first})
    await db.execute("UPDATE configs SET next_run_at = %(at)s WHERE owner_id = %(o)s", {"at": early, "o": b.user_id})
    summary = await tick(pool, settings, early + timedelta(seconds=1) - timedelta(seconds=settings.due_window_s))
    assert summary.cycle_ids == []
    summary = await tick(pool, settings, early)
    [second] = summary.cycle_ids
    assert (await cycle_row(db, second))["scheduled_at"] == scheduled + timedelta(minutes=5)
    # And far too early (beyond the due window) it is postponed to the bound, counted as "interval".
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now() WHERE id = %(c)s", {"c": second})
    await db.execute("UPDATE configs SET next_run_at = %(at)s WHERE owner_id = %(o)s",
                     {"at": scheduled + timedelta(minutes=6), "o": b.user_id})
    summary = await tick(pool, settings, scheduled + timedelta(minutes=6))
    assert summary.cycle_ids == [] and summary.skipped == {"interval": 1}
    assert (await config_row(db, b.user_id))["next_run_at"] == scheduled + timedelta(minutes=10)


# ---- the property ------------------------------------------------------------------------------------

# One step of a pattern. Waits are in seconds on the test's timeline; faults hit the account's next send.
STEP = st.one_of(
    st.tuples(st.just("wait"), st.sampled_from([1, 5, 15, 30, 45, 59, 60, 61, 90, 130])),
    st.tuples(st.just("tick"), st.just(0)),
    st.tuples(st.just("work"), st.just(0)),
    st.tuples(st.just("flood"), st.sampled_from([5, 30, 61, 200])),
    st.tuples(st.just("slowmode"), st.sampled_from([10, 40, 59, 61])),
    st.tuples(st.just("network"), st.just(0)),
    st.tuples(st.just("crash"), st.just(0)),  # a job claimed and died: its lease must expire first
)
_FLOOD_ACROSS_BOUNDARY = [("tick", 0), ("flood", 45), ("work", 0), ("wait", 50), ("work", 0), ("wait", 15),
                          ("tick", 0), ("work", 0)]
_OUTAGE = [("tick", 0), ("work", 0), ("wait", 61), ("tick", 0), ("wait", 60), ("tick", 0), ("wait", 60),
           ("tick", 0), ("work", 0), ("wait", 1), ("tick", 0), ("work", 0)]
_RESTART = [("tick", 0), ("crash", 0), ("wait", 130), ("tick", 0), ("work", 0), ("tick", 0), ("work", 0)]


async def _apply(step: tuple[str, int], b, clock: TimeTravel, posts: Posts, db, net, settings, pool, ctx) -> None:
    action, value = step
    if action == "wait":
        await clock.advance(value)
    elif action == "tick":
        await tick(pool, settings)
    elif action == "work":
        await work(ctx, db, b.user_id, posts)
    elif action == "flood":
        await net.fail_next(b.tg_user_id, f"FLOOD_WAIT_{value}")
    elif action == "slowmode":
        await net.fail_next(b.tg_user_id, f"SLOWMODE_WAIT_{value}")
    elif action == "network":
        await net.fail_next(b.tg_user_id, "NETWORK")
    elif action == "crash":
        from db import batches, cycles

        for cycle_id in await running_cycles(db, b.user_id):
            now = utcnow()
            cycle = await cycles.get(db, cycle_id)
            assert cycle is not None
            owned = await (await db.execute("SELECT id FROM accounts WHERE owner_id = %(o)s",
                                            {"o": b.user_id})).fetchall()
            await batches.start(db, cycle, now=now, due_by=now, lease_until=now + timedelta(seconds=settings.lease_s),
                                limit=2, account_ids=[r[0] for r in owned])


_USERS = iter(range(3_200_000, 3_300_000))


@hsettings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(pattern=st.lists(STEP, min_size=4, max_size=24))
@example(pattern=_FLOOD_ACROSS_BOUNDARY)
@example(pattern=_OUTAGE)
@example(pattern=_RESTART)
async def test_any_pattern_of_pauses_outages_and_restarts_keeps_every_group_spaced(
    pattern, db, net, settings, pool, ctx
) -> None:
    b, clock, posts = await broadcaster(db, net, settings, next(_USERS))
    for step in pattern:
        await _apply(step, b, clock, posts, db, net, settings, pool, ctx)
    # Then let everything finish: nothing is lost, nothing is sent twice in a cycle.
    for _ in range(12):
        await clock.advance(250)
        await tick(pool, settings)
        await work(ctx, db, b.user_id, posts)
    gaps = posts.gaps()
    assert not gaps or min(gaps) >= INTERVAL_S, (pattern, sorted(gaps)[:5])
    for chat_id in b.chat_ids:
        keys = posts.keys.get(chat_id, [])
        assert len(keys) == len(set(keys)), (pattern, chat_id)
    cur = await db.execute("SELECT count(*) FROM deliveries WHERE owner_id = %(o)s AND status IN "
                           "('pending', 'in_flight')", {"o": b.user_id})
    assert (await cur.fetchone()) == (0,), pattern
