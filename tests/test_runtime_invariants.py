"""docs/runtime.md, "Invariants": no delivery sent twice or lost after a SIGKILL
between send and commit, a Redis flush, or two jobs for one cycle at once; cycles never overlap
nor start early; a flood wait is honoured account-wide; expired or banned users stop within a tick."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from rq.registry import ScheduledJobRegistry

from jobs.locks import AccountLock
from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.runtime_helpers import (
    config_row,
    cycle_row,
    deliveries_of,
    make_broadcaster,
    make_due,
    spawn_worker,
    utcnow,
)
from tests.worker_faults import KILL_AFTER_SEND_ENV
from worker import queues

TERMINAL = {"sent", "failed", "cancelled"}


async def posts_per_group(net, chat_ids) -> list[int]:
    return [len(await net.posted(c)) for c in chat_ids]


async def drive(ctx, settings, sync_redis, cycle_id: int, *, limit: int = 50) -> list[str]:
    """Run the cycle's jobs in-process the way the RQ scheduler would: each continuation at its
    scheduled time (real time passes)."""
    outcomes = []
    for _ in range(limit):
        result = await run_batch(ctx, cycle_id)
        outcomes.append(result.outcome)
        if result.outcome not in {"continued", "deferred", "lock_busy"} or result.job_id is None:
            return outcomes
        registry = ScheduledJobRegistry(queue=queues.broadcast_queue(settings, sync_redis))
        when = registry.get_scheduled_time(result.job_id) if result.job_id in registry.get_job_ids() else None
        if when is not None:
            await asyncio.sleep(max(0.0, when.timestamp() - time.time()))
    raise AssertionError(f"cycle {cycle_id} did not end: {outcomes}")


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 2}])
async def test_two_jobs_for_one_cycle_at_once_without_the_lock_send_each_delivery_once(
    db, net, settings, pool, ctx, monkeypatch
) -> None:
    """Even if the account lock were lost (say Redis lost it), the claim with SKIP LOCKED gives each
    delivery to one job only, and the random_id would de-duplicate anything else."""
    b = await make_broadcaster(db, net, settings, 2001, groups=7)
    [cycle_id] = (await tick(pool, settings)).cycle_ids

    async def always(self) -> bool:
        return True

    monkeypatch.setattr(AccountLock, "acquire", always)
    for _ in range(6):
        await asyncio.gather(*(run_batch(ctx, cycle_id) for _ in range(3)))
    assert await posts_per_group(net, b.chat_ids) == [1] * 7
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"sent"}
    assert (await cycle_row(db, cycle_id))["sent"] == 7


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 2}])
async def test_redis_flushed_mid_cycle_is_recovered_by_the_tick(db, net, settings, pool, ctx, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 2002, groups=5)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    first = await run_batch(ctx, cycle_id)
    assert first.outcome == "continued"
    # Redis loses everything of ours and RQ's (the emulated Telegram, which lives in the same db
    # here, is of course not part of our Redis in real life, so it is kept).
    for key in sync_redis.scan_iter():
        if not key.startswith(net.p.encode()):
            sync_redis.delete(key)
    assert sync_redis.keys("rq:*") == []
    summary = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert summary.recovered == 1
    [job_id] = queues.broadcast_queue(settings, sync_redis).get_job_ids()
    assert job_id.startswith(f"send-{cycle_id}-")
    await drive(ctx, settings, sync_redis, cycle_id)
    assert await posts_per_group(net, b.chat_ids) == [1] * 5
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"sent"}


@pytest.mark.slow
async def test_sigkill_between_send_and_commit_neither_duplicates_nor_loses(
    db, net, settings, pool, sync_redis, tmp_path
) -> None:
    b = await make_broadcaster(db, net, settings, 2003, groups=3)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    marker = tmp_path / "killed"
    victim = spawn_worker(settings, burst=True, lease_s=1, lock_ttl_s=1, **{KILL_AFTER_SEND_ENV: marker})
    out, _ = await asyncio.to_thread(victim.communicate, timeout=60)
    assert victim.returncode == -9 and marker.exists(), out.decode()[-2000:]
    # Telegram got the first message; the database never heard of it.
    assert await posts_per_group(net, b.chat_ids) == [1, 0, 0]
    rows = await deliveries_of(db, cycle_id)
    assert [r["status"] for r in rows] == ["in_flight"] * 3  # the whole micro-batch was claimed
    # The dead job's lock expires by itself (nobody renews it); then the tick sees the job is dead.
    for _ in range(100):
        if not sync_redis.exists(queues.account_lock_key(settings, b.account_id)):
            break
        await asyncio.sleep(0.05)
    summary = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert summary.recovered == 2  # the expired lease, and the cycle re-enqueued
    rescuer = spawn_worker(settings, burst=True)
    out, _ = await asyncio.to_thread(rescuer.communicate, timeout=60)
    assert rescuer.returncode == 0, out.decode()[-2000:]
    assert await posts_per_group(net, b.chat_ids) == [1, 1, 1]
    rows = await deliveries_of(db, cycle_id)
    assert {r["status"] for r in rows} == {"sent"}
    assert (await cycle_row(db, cycle_id))["outcome"] == "sent"


async def test_no_delivery_is_lost_after_a_lease_expires(db, net, settings, pool, ctx, sync_redis) -> None:
    """A job that claimed and died without sending: the rows come back and are sent once."""
    b = await make_broadcaster(db, net, settings, 2004, groups=3)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    await db.execute("UPDATE deliveries SET status = 'in_flight', lease_until = now() + interval '2 minutes'")
    sync_redis.delete(*sync_redis.keys("rq:*"))  # and its job is gone
    await tick(pool, settings, utcnow() + timedelta(minutes=3))
    await drive(ctx, settings, sync_redis, cycle_id)
    assert await posts_per_group(net, b.chat_ids) == [1, 1, 1]
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} <= TERMINAL


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 10}])
async def test_flood_wait_is_honoured_exactly_account_wide(db, net, settings, pool, ctx, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 2005, groups=3)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    await net.set_flood(b.tg_user_id, 2)
    await drive(ctx, settings, sync_redis, cycle_id)
    attempts = await net.send_attempts(b.tg_user_id)
    assert len(attempts) == 4  # one refused, then the three sends
    assert all(t >= attempts[0] + 2 for t in attempts[1:])
    assert await posts_per_group(net, b.chat_ids) == [1, 1, 1]


async def test_cycles_of_one_config_never_overlap(db, net, settings, pool, ctx, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 2006, groups=2, interval_minutes=3)
    [first] = (await tick(pool, settings)).cycle_ids
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_100")  # keeps cycle 1 open
    await run_batch(ctx, first)
    for minutes in (3, 6, 9):
        await make_due(db, b.user_id)
        summary = await tick(pool, settings, utcnow() + timedelta(minutes=minutes))
        assert summary.cycle_ids == [] and summary.skipped == {"previous_cycle_running": 1}
    await db.execute("UPDATE deliveries SET next_attempt_at = now() - interval '1 second' WHERE cycle_id = %(c)s",
                     {"c": first})
    assert (await run_batch(ctx, first)).outcome == "finished"
    await make_due(db, b.user_id)
    [second] = (await tick(pool, settings)).cycle_ids
    c1, c2 = await cycle_row(db, first), await cycle_row(db, second)
    assert c1["finished_at"] <= c2["created_at"]


@pytest.mark.parametrize("change", ["expired", "banned"])
async def test_expired_or_banned_user_stops_within_one_tick(db, net, settings, pool, ctx, change: str) -> None:
    b = await make_broadcaster(db, net, settings, 2007, groups=3)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    if change == "expired":
        await db.execute("UPDATE bot_users SET expires_at = now() - interval '1 second' WHERE user_id = 2007")
    else:
        await db.execute("UPDATE bot_users SET status = 'banned' WHERE user_id = 2007")
    await make_due(db, b.user_id)
    summary = await tick(pool, settings)
    assert summary.skipped == {"not_allowed": 1}
    assert (await config_row(db, b.user_id))["active"] is False
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"cancelled"}
    assert (await run_batch(ctx, cycle_id)).outcome == "inactive"
    assert await net.send_attempts(b.tg_user_id) == []
