"""One worker process, many send batches at once (docs/worker.md): batches of different accounts run
side by side, one account never runs two at once, a job timeout cancels its own batch only, an
announcement never holds back broadcasts, an account's connection is reused across its batches, and
a SIGKILL of a worker holding many batches and connections neither duplicates nor loses a post.

Real worker processes (`tgcast worker`) on the test's PostgreSQL, Redis and emulated Telegram; the
checks are on what the emulator received and on rows, never on durations."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job
from rq.registry import FailedJobRegistry

from db import announcements, users
from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.conftest import ADMIN_ID
from tests.runtime_helpers import cycle_row, deliveries_of, make_broadcaster, make_due, spawn_worker, utcnow
from worker import queues

pytestmark = pytest.mark.slow


async def run_burst(settings, **env) -> str:
    worker = spawn_worker(settings, burst=True, **env)
    try:
        out, _ = await asyncio.to_thread(worker.communicate, timeout=180)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    text = out.decode()
    assert worker.returncode == 0, text[-3000:]
    return text


async def run_until(settings, done, **env) -> None:
    """A long-running worker (its scheduler moves continuations in) until `done()`, then SIGTERM."""
    worker = spawn_worker(settings, burst=False, **env)
    try:
        for _ in range(1200):
            if await done():
                break
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, out.decode()[-3000:]


async def all_deliveries(db, cycle_ids: list[int]) -> list[dict]:
    cur = await db.execute("SELECT status FROM deliveries WHERE cycle_id = ANY(%(ids)s)", {"ids": cycle_ids})
    return [{"status": row[0]} for row in await cur.fetchall()]


async def windows(net, broadcasters) -> list[tuple[float, float]]:
    """Per account, the first and last time Telegram saw a send from it."""
    found = []
    for b in broadcasters:
        attempts = await net.send_attempts(b.tg_user_id)
        found.append((min(attempts), max(attempts)))
    return found


@pytest.mark.parametrize("concurrency", [1, 20])
async def test_batches_of_different_accounts_run_side_by_side(db, net, settings, pool, concurrency) -> None:
    people = [await make_broadcaster(db, net, settings, 4100 + i, groups=3) for i in range(4)]
    assert len((await tick(pool, settings)).cycle_ids) == 4
    await run_burst(settings, worker_concurrency=concurrency, send_pause_min_ms=700, send_pause_max_ms=700)
    for b in people:
        assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1, 1]
    spans = await windows(net, people)
    if concurrency == 1:  # the control: one at a time, the accounts' windows follow each other
        ordered = sorted(spans)
        assert all(a[1] < b[0] for a, b in itertools.pairwise(ordered)), ordered
    else:  # all four were sending at one moment
        assert max(start for start, _ in spans) < min(end for _, end in spans), spans


async def test_one_account_never_runs_two_batches_at_once(db, net, settings, pool, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 4200, groups=6)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    for _ in range(5):  # extra jobs of the same cycle, all ready at once (as after a recovery race)
        queues.enqueue_send(settings, sync_redis, cycle_id, utcnow())

    async def done() -> bool:
        return (await cycle_row(db, cycle_id))["status"] == "done"

    # Between two batches of one account the continuation delay keeps the pace (CONT_DELAY_MS).
    await run_until(settings, done, worker_concurrency=20, batch_size=2, send_pause_min_ms=400,
                    send_pause_max_ms=400, cont_delay_ms=1000, cont_jitter_ms=0)
    attempts = sorted(await net.send_attempts(b.tg_user_id))
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1] * 6
    # Two batches at once would interleave their sends closer than the account's pause.
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.39, gaps


async def test_a_job_timeout_cancels_its_own_batch_only(db, net, settings, pool, sync_redis) -> None:
    slow = await make_broadcaster(db, net, settings, 4300, groups=6)
    other = await make_broadcaster(db, net, settings, 4301, groups=3)
    summary = await tick(pool, settings)
    slow_cycle, other_cycle = sorted(summary.cycle_ids)
    job = Job.fetch(queues.send_job_id(slow_cycle, "0"), connection=sync_redis)
    job.timeout = 2  # its batch needs ~5 s at a 1 s pause
    job.save()
    await run_burst(settings, worker_concurrency=20, send_pause_min_ms=1000, send_pause_max_ms=1000)
    failed = FailedJobRegistry(queue=queues.broadcast_queue(settings, sync_redis))
    assert failed.get_job_ids() == [job.id]
    result = Job.fetch(job.id, connection=sync_redis).latest_result()
    assert result is not None and "JobTimeoutException" in (result.exc_string or "")
    # The cancelled batch handed its rows back and let go of the account.
    statuses = [r["status"] for r in await deliveries_of(db, slow_cycle)]
    assert "in_flight" not in statuses and "sent" in statuses and "pending" in statuses, statuses
    assert not sync_redis.exists(queues.account_lock_key(settings, slow.account_id))
    # Its neighbour was not touched.
    assert (await cycle_row(db, other_cycle))["outcome"] == "sent"
    assert [len(await net.posted(c)) for c in other.chat_ids] == [1, 1, 1]


async def test_an_announcement_never_holds_back_broadcasts(db, net, settings, pool, botapi, sync_redis) -> None:
    audience = 160
    for i in range(audience):
        await users.set_access(db, 4_500_000 + i, status="active", expires_at=None)
    source = botapi.add_message(ADMIN_ID, text="News")
    ann = await announcements.create(db, admin_id=ADMIN_ID, from_chat_id=ADMIN_ID, source_message_id=source,
                                     total=audience)
    queues.enqueue_announcement(settings, sync_redis, ann.id)  # queued first: ~8 s at 20 per second
    b = await make_broadcaster(db, net, settings, 4400, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    worker = spawn_worker(settings, burst=True, worker_concurrency=20, announce_rate=20)
    try:
        for _ in range(400):
            if (await cycle_row(db, cycle_id))["status"] == "done":
                break
            await asyncio.sleep(0.05)
        row = await announcements.get(db, ann.id)
        assert row is not None and row.status != "done", "the broadcast waited for the announcement"
        assert (await cycle_row(db, cycle_id))["outcome"] == "sent"
        out, _ = await asyncio.to_thread(worker.communicate, timeout=120)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, out.decode()[-2000:]
    row = await announcements.get(db, ann.id)
    assert row is not None and row.status == "done" and row.delivered == row.total >= audience
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_an_accounts_connection_is_reused_across_its_batches_and_cycles(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 4600, groups=3)
    for _ in range(2):  # two cycles of three one-delivery batches each
        [cycle_id] = (await tick(pool, settings)).cycle_ids
        for _ in range(3):
            await run_batch(ctx, cycle_id)
        assert (await cycle_row(db, cycle_id))["outcome"] == "sent"
        await make_due(db, b.user_id)
    assert [len(await net.posted(c)) for c in b.chat_ids] == [2, 2, 2]
    assert await net.connect_count(b.tg_user_id) == 1


async def test_sigkill_of_a_worker_holding_many_batches_neither_duplicates_nor_loses(
    db, net, settings, pool, sync_redis
) -> None:
    people = [await make_broadcaster(db, net, settings, 4_700_000 + i, groups=2) for i in range(120)]
    cycle_ids = (await tick(pool, settings)).cycle_ids
    assert len(cycle_ids) == 120
    chats = [c for b in people for c in b.chat_ids]
    victim = spawn_worker(settings, burst=False, worker_concurrency=500, send_pause_min_ms=1500,
                          send_pause_max_ms=1500, lease_s=5, lock_ttl_s=3)
    try:
        for _ in range(1200):  # until the first sends of many accounts are out, their second ones pending
            if sum([len(await net.posted(c)) for c in chats[::2]]) >= 60:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the victim never sent")
        assert await net.open_connections() >= 60  # many accounts connected at once in one process
        os.kill(victim.pid, signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 30)
    finally:
        if victim.poll() is None:
            os.kill(victim.pid, signal.SIGKILL)
    in_flight = sum(r["status"] == "in_flight" for r in await all_deliveries(db, cycle_ids))
    assert in_flight > 0  # the kill caught batches mid-way
    await asyncio.sleep(3.5)  # the dead worker's account locks expire (nobody renews them)
    summary = await tick(pool, settings, datetime.now(UTC) + timedelta(seconds=10))
    assert summary.recovered > 0
    rescuer = spawn_worker(settings, burst=False, worker_concurrency=500, send_pause_min_ms=0, send_pause_max_ms=0)
    try:
        for i in range(1200):
            rows = await all_deliveries(db, cycle_ids)
            if all(r["status"] == "sent" for r in rows):
                break
            if i % 40 == 39:  # what the cron would do meanwhile
                await tick(pool, settings, datetime.now(UTC) + timedelta(seconds=10))
            await asyncio.sleep(0.05)
        rescuer.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(rescuer.communicate, timeout=60)
    finally:
        if rescuer.poll() is None:
            os.kill(rescuer.pid, signal.SIGKILL)
    assert rescuer.returncode == 0, out.decode()[-2000:]
    posts = [await net.posted(c) for c in chats]
    assert [len(p) for p in posts] == [1] * len(chats)  # 0 duplicates, 0 lost
    assert {r["status"] for r in await all_deliveries(db, cycle_ids)} == {"sent"}


async def test_a_job_that_cannot_be_imported_fails_alone(db, net, settings, pool, sync_redis) -> None:
    bad = queues.broadcast_queue(settings, sync_redis).enqueue("jobs.no_such_module.send_batch", 1)
    b = await make_broadcaster(db, net, settings, 4800, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    await run_burst(settings, worker_concurrency=20)
    failed = FailedJobRegistry(queue=queues.broadcast_queue(settings, sync_redis))
    assert failed.get_job_ids() == [bad.id]
    assert (await cycle_row(db, cycle_id))["outcome"] == "sent"
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]


async def test_rq_registries_show_what_runs_and_what_finished(db, net, settings, pool, sync_redis) -> None:
    """What rq-dashboard and `rq info` read: the started registry and the worker's executions while the
    batches run, the finished registry after."""
    from rq import Worker
    from rq.registry import FinishedJobRegistry, StartedJobRegistry

    people = [await make_broadcaster(db, net, settings, 4900 + i, groups=4) for i in range(3)]
    cycle_ids = (await tick(pool, settings)).cycle_ids
    job_ids = {queues.send_job_id(c, "0") for c in cycle_ids}
    queue = queues.broadcast_queue(settings, sync_redis)
    seen_running: set[str] = set()
    executions = 0

    async def done() -> bool:
        nonlocal executions
        seen_running.update(StartedJobRegistry(queue=queue).get_job_ids())
        for worker in Worker.all(connection=sync_redis):
            executions = max(executions, len(worker.get_current_executions(refresh=True)))
        return all([(await cycle_row(db, c))["status"] == "done" for c in cycle_ids])

    await run_until(settings, done, worker_concurrency=20, send_pause_min_ms=800, send_pause_max_ms=800)
    assert job_ids <= seen_running
    assert executions == 3  # all three batches at once, each an execution of the one worker
    assert StartedJobRegistry(queue=queue).get_job_ids() == []
    assert job_ids <= set(FinishedJobRegistry(queue=queue).get_job_ids())
    for b in people:
        assert [len(await net.posted(c)) for c in b.chat_ids] == [1] * 4
