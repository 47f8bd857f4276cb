"""Account-affine routing (worker/own_queues.py, docs/worker.md "Routing"): an account's batches go to the worker
process holding its connection, a worker's own queue and the shared one fill one slot pool, and a worker's
queue never strands a job: a SIGKILLed worker's waiting jobs are handed to the shared queue by a live one,
a stopping worker hands its own over.

Until the tick routes by itself, `routed_tick` stands in for it: it runs the tick while the workers are
suspended and puts each new cycle's job where `home_queues` says (nothing to move once the tick does it)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis as SyncRedis
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.suspension import resume, suspend

from core.settings import Settings
from jobs.tick import tick
from tests.runtime_helpers import cycle_row, make_broadcaster, make_due, spawn_worker
from userbot.claims import claim_key
from worker import own_queues, queues
from worker.context import ProcessRuntime
from worker.loop_worker import LoopWorker
from worker.process import BroadcastWorker

# ---- the mapping, the hand-over, the liveness -----------------------------------------------------------


def test_home_queues_map_held_accounts_to_their_live_holders_queue(settings: Settings, sync_redis: SyncRedis) -> None:
    sync_redis.set(claim_key(settings.redis_prefix, "1"), "w1")
    sync_redis.set(claim_key(settings.redis_prefix, "2"), "w2")  # a holder with no live queue (a stock worker)
    own_queues.announce_home(settings, sync_redis, "w1")
    assert own_queues.home_queues(settings, sync_redis, [1, 2, 3, 1]) == {
        1: own_queues.personal_queue_name(settings, "w1")}
    own_queues.announce_home(settings, sync_redis, "w2")
    assert set(own_queues.home_queues(settings, sync_redis, [1, 2, 3]).items()) == {
        (1, own_queues.personal_queue_name(settings, "w1")), (2, own_queues.personal_queue_name(settings, "w2"))}
    own_queues.withdraw_home(settings, sync_redis, "w1")  # w1 stops taking jobs
    assert own_queues.home_queues(settings, sync_redis, [1, 2, 3]) == {
        2: own_queues.personal_queue_name(settings, "w2")}
    assert own_queues.home_queues(settings, sync_redis, []) == {}


def test_hand_over_moves_queued_and_scheduled_jobs_to_the_shared_queue(settings: Settings, sync_redis: SyncRedis,
                                                                       ) -> None:
    own = Queue(own_queues.personal_queue_name(settings, "w1"), connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    shared.enqueue("builtins.print", "already shared", job_id="s1")
    own.enqueue("builtins.print", "a", job_id="q1")
    own.enqueue("builtins.print", "b", job_id="q2")
    at = datetime.now(UTC) + timedelta(minutes=5)
    own.enqueue_at(at, "builtins.print", "c", job_id="d1")
    assert own_queues.hand_over(settings, sync_redis, own.name) == (2, 1)
    assert (own.job_ids, ScheduledJobRegistry(queue=own).get_job_ids()) == ([], [])
    assert shared.job_ids == ["q1", "q2", "s1"]  # they had waited already: ahead, in their order
    scheduled = ScheduledJobRegistry(queue=shared)
    assert scheduled.get_job_ids() == ["d1"]
    assert scheduled.get_expiration_time(Job.fetch("d1", connection=sync_redis)) == at.replace(microsecond=0)
    assert {Job.fetch(j, connection=sync_redis).origin for j in ("q1", "q2", "d1")} == {shared.name}
    assert own_queues.hand_over(settings, sync_redis, own.name) == (0, 0)


def test_dead_homes_are_the_worker_queues_whose_owner_stopped_beating(settings: Settings, sync_redis: SyncRedis,
                                                                      ) -> None:
    for owner in ("live", "dead", "me"):
        Queue(own_queues.personal_queue_name(settings, owner), connection=sync_redis).enqueue("builtins.print", owner)
    queues.broadcast_queue(settings, sync_redis).enqueue("builtins.print", "shared")
    own_queues.announce_home(settings, sync_redis, "live")
    mine = own_queues.personal_queue_name(settings, "me")
    assert own_queues.dead_homes(settings, sync_redis, own=mine) == [own_queues.personal_queue_name(settings, "dead")]
    own_queues.withdraw_home(settings, sync_redis, "live")
    assert len(own_queues.dead_homes(settings, sync_redis, own=mine)) == 2


# ---- one slot pool ---------------------------------------------------------------------------------------

_runs: list[tuple[str, float, float]] = []
_runs_lock = threading.Lock()


def probe(tag: str) -> None:
    """A job of the in-process worker below: records when it ran."""
    started = time.monotonic()
    time.sleep(0.3)
    with _runs_lock:
        _runs.append((tag, started, time.monotonic()))


def test_own_queue_first_and_in_the_same_slots_as_the_shared_queue(settings: Settings, sync_redis: SyncRedis) -> None:
    own = Queue(own_queues.personal_queue_name(settings, "w1"), connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    for i in range(3):
        shared.enqueue(probe, f"shared-{i}")
    for i in range(3):
        own.enqueue(probe, f"own-{i}")
    _runs.clear()
    runtime = ProcessRuntime(settings)
    worker = LoopWorker([own, shared], connection=sync_redis, limits={shared.name: 2}, pools={own.name: shared.name},
                        runtime=runtime)
    try:
        worker.work(burst=True)
    finally:
        runtime.close()
    assert len(_runs) == 6
    order = [tag for tag, _, _ in sorted(_runs, key=lambda r: r[1])]
    assert order[:3] == ["own-0", "own-1", "own-2"]
    edges = sorted([(s, 1) for _, s, _ in _runs] + [(e, -1) for _, _, e in _runs], key=lambda x: (x[0], x[1]))
    at_once = peak = 0
    for _, step in edges:
        at_once += step
        peak = max(peak, at_once)
    assert peak == 2  # two slots in all, not two for the shared queue and one for the own


def test_a_stalled_job_loop_lets_the_workers_liveness_key_lapse(settings: Settings, sync_redis: SyncRedis,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """the main thread alone answering is not liveness; the job loop must answer."""
    monkeypatch.setattr(own_queues, "LOOP_STALL_S", 0.3)
    own = Queue(own_queues.personal_queue_name(settings, "w-stall"), connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    runtime = ProcessRuntime(settings)
    worker = BroadcastWorker([own, shared], connection=sync_redis, settings=settings, owner="w-stall",
                             pools={own.name: shared.name}, runtime=runtime)
    key = f"{settings.redis_prefix}home:w-stall"

    def beat() -> bool:
        worker._next_home_beat = 0.0  # due now
        worker.upkeep()
        return bool(sync_redis.exists(key))

    async def noop(ctx: object) -> None:
        return None

    try:
        runtime.run(noop)  # the loop runs
        assert beat()
        time.sleep(0.1)
        runtime._loop.call_soon_threadsafe(time.sleep, 1.5)  # the job loop stalls (a blocking call)
        sync_redis.delete(key)
        beat()  # the ping that finds it stalled
        sync_redis.delete(key)
        time.sleep(0.5)
        assert not beat()  # unanswered for longer than LOOP_STALL_S: no liveness written
        time.sleep(1.2)
        beat()  # the loop is back: it answers the ping
        assert beat()
    finally:
        runtime.close()


# ---- real worker processes -------------------------------------------------------------------------------

WORKER_ENV = {"worker_concurrency": 1, "send_pause_min_ms": 300, "send_pause_max_ms": 300}


async def wait_for(predicate, limit_s: float = 60.0, what: str = "") -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def homes(settings: Settings, r: SyncRedis) -> set[str]:
    prefix = f"{settings.redis_prefix}home:"
    return {k.decode()[len(prefix):] for k in r.scan_iter(f"{prefix}*")}


async def start_worker(settings: Settings, r: SyncRedis, **env):  # -> (process, owner)
    before = homes(settings, r)
    proc = spawn_worker(settings, burst=False, **(WORKER_ENV | env))

    async def up() -> bool:
        return bool(homes(settings, r) - before)

    await wait_for(up, what="the worker's liveness key")
    [owner] = homes(settings, r) - before
    return proc, owner


async def stop_worker(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        assert proc.returncode == 0, out.decode()[-3000:]


def place(r: SyncRedis, job_id: str, queue_name: str, at: datetime | None = None) -> None:
    """Put a waiting job on `queue_name` (queued, or scheduled at `at`), wherever it waited before."""
    job = Job.fetch(job_id, connection=r)
    origin = Queue(job.origin, connection=r)
    origin.remove(job_id)
    ScheduledJobRegistry(queue=origin).remove(job_id)
    target = Queue(queue_name, connection=r)
    if at is None:
        target.enqueue_job(job)
    else:
        target.schedule_job(job, at)


async def owners_of(db, cycle_ids: list[int]) -> dict[int, int]:
    """{cycle id: the owner's first account id} (connection claims and routing name accounts)."""
    cur = await db.execute(
        "SELECT c.id, (SELECT min(a.id) FROM accounts a WHERE a.owner_id = c.owner_id) FROM cycles c"
        " WHERE c.id = ANY(%(ids)s)", {"ids": cycle_ids})
    return {row[0]: row[1] for row in await cur.fetchall()}


async def suspended_tick(db, pool, settings: Settings, r: SyncRedis) -> dict[int, int]:
    """The tick with the workers held (RQ's suspension), so its jobs can be placed before any is taken;
    the caller resumes. Returns {cycle id: the owner's account id}."""
    suspend(r)
    await asyncio.sleep(1.5)  # a worker blocked in a dequeue (up to 1 s) gets back to the suspension check
    cycle_ids = (await tick(pool, settings)).cycle_ids
    return await owners_of(db, cycle_ids)


async def routed_tick(db, pool, settings: Settings, r: SyncRedis) -> list[int]:
    try:
        cycles = await suspended_tick(db, pool, settings, r)
        home = own_queues.home_queues(settings, r, cycles.values())
        for cycle_id, owner_id in cycles.items():
            if owner_id in home:
                place(r, queues.send_job_id(cycle_id, "0"), home[owner_id])
    finally:
        resume(r)
    return list(cycles)


async def all_done(db, cycle_ids: list[int]) -> bool:
    return all([(await cycle_row(db, c))["status"] == "done" for c in cycle_ids])


def claim_holders(settings: Settings, r: SyncRedis, account_ids: list[int]) -> set[str | None]:
    raw: list[bytes | None] = r.mget([claim_key(settings.redis_prefix, str(a)) for a in account_ids])  # type: ignore[assignment]
    return {v.decode() if v else None for v in raw}


@pytest.mark.slow
async def test_an_accounts_batches_go_to_the_worker_holding_its_connection(db, net, settings, pool, sync_redis) -> None:
    """Worker A holds four accounts; B is idle. Each worker runs one batch at a time, so without routing
    B would take some of the accounts' next batches (and connect them again) while A is busy."""
    people = [await make_broadcaster(db, net, settings, 4_810_000 + i, groups=2) for i in range(4)]
    account_ids = [p.account_id for p in people]
    a, a_owner = await start_worker(settings, sync_redis)
    b = None
    try:
        first = await routed_tick(db, pool, settings, sync_redis)
        await wait_for(lambda: all_done(db, first), what="the first cycles")
        assert claim_holders(settings, sync_redis, account_ids) == {a_owner}
        b, b_owner = await start_worker(settings, sync_redis)
        for _ in range(2):
            for p in people:
                await make_due(db, p.user_id)
            cycles = await routed_tick(db, pool, settings, sync_redis)
            assert len(cycles) == 4
            await wait_for(lambda cycles=cycles: all_done(db, cycles), what="the next cycles")
    finally:
        await stop_worker(a)
        if b is not None:
            await stop_worker(b)
    for p in people:
        assert [len(await net.posted(c)) for c in p.chat_ids] == [3, 3]
        assert await net.connect_count(p.tg_user_id) == 1  # connected once, on A, for all three cycles
    b_queue = Queue(own_queues.personal_queue_name(settings, b_owner), connection=sync_redis)
    assert b_queue.finished_job_registry.count == 0


@pytest.mark.slow
async def test_a_batchs_continuation_stays_on_the_worker_holding_the_connection(db, net, settings, pool,
                                                                                 sync_redis) -> None:
    """One group per batch, so every cycle of 3 groups is a batch and 2 continuations. B idles on the
    shared queue while A finishes each batch: a continuation put there would be B's, and B would connect."""
    people = [await make_broadcaster(db, net, settings, 4_840_000 + i, groups=3) for i in range(2)]
    env = {"batch_size": 1}
    a, a_owner = await start_worker(settings, sync_redis, **env)
    b = None
    try:
        first = await routed_tick(db, pool, settings, sync_redis)
        await wait_for(lambda: all_done(db, first), what="the first cycles")
        b, b_owner = await start_worker(settings, sync_redis, **env)
        for p in people:
            await make_due(db, p.user_id)
        cycles = await routed_tick(db, pool, settings, sync_redis)
        await wait_for(lambda: all_done(db, cycles), what="the second cycles")
    finally:
        await stop_worker(a)
        if b is not None:
            await stop_worker(b)
    for p in people:
        assert [len(await net.posted(c)) for c in p.chat_ids] == [2, 2, 2]
        assert await net.connect_count(p.tg_user_id) == 1  # every batch of both cycles on A
    # The shared queue carried only the first cycles' first jobs (no holder yet); every continuation ran
    # from A's own queue.
    shared = queues.broadcast_queue(settings, sync_redis).finished_job_registry
    assert set(shared.get_job_ids()) == {queues.send_job_id(c, "0") for c in first}
    a_queue = Queue(own_queues.personal_queue_name(settings, a_owner), connection=sync_redis)
    assert a_queue.finished_job_registry.count == 2 * 2 + 3 * 2  # first cycles' continuations, second cycles
    b_queue = Queue(own_queues.personal_queue_name(settings, b_owner), connection=sync_redis)
    assert b_queue.finished_job_registry.count == 0


@pytest.mark.slow
async def test_a_sigkilled_workers_waiting_jobs_are_handed_over_and_run(db, net, settings, pool, sync_redis) -> None:
    x, y = [await make_broadcaster(db, net, settings, 4_820_000 + i, groups=2) for i in range(2)]
    b, _ = await start_worker(settings, sync_redis)
    lock = f"rq:scheduler-lock:{queues.broadcast_queue_name(settings)}"

    async def b_schedules_the_shared_queue() -> bool:
        return bool(sync_redis.exists(lock))

    await wait_for(b_schedules_the_shared_queue, what="B's scheduler")
    a, a_owner = await start_worker(settings, sync_redis)
    a_queue = Queue(own_queues.personal_queue_name(settings, a_owner), connection=sync_redis)
    try:
        try:  # the first cycles on A, so that A holds both accounts
            cycles = await suspended_tick(db, pool, settings, sync_redis)
            for cycle_id in cycles:
                place(sync_redis, queues.send_job_id(cycle_id, "0"), a_queue.name)
        finally:
            resume(sync_redis)
        await wait_for(lambda: all_done(db, list(cycles)), what="the first cycles")
        assert claim_holders(settings, sync_redis, [x.account_id, y.account_id]) == {a_owner}
        for p in (x, y):
            await make_due(db, p.user_id)
        try:  # the next ones wait on A: x's queued, y's scheduled
            cycles = await suspended_tick(db, pool, settings, sync_redis)
            assert set(own_queues.home_queues(settings, sync_redis, cycles.values()).values()) == {a_queue.name}
            by_owner = {owner: cycle for cycle, owner in cycles.items()}
            x_job, y_job = (queues.send_job_id(by_owner[p.account_id], "0") for p in (x, y))
            place(sync_redis, x_job, a_queue.name)
            place(sync_redis, y_job, a_queue.name, at=datetime.now(UTC) + timedelta(seconds=5))
            os.killpg(a.pid, signal.SIGKILL)  # the worker and its scheduler, as a container's end does
            await asyncio.to_thread(a.wait, 10)
        finally:
            resume(sync_redis)

        async def handed_over() -> bool:
            return a_queue.count == 0 and ScheduledJobRegistry(queue=a_queue).count == 0

        took = await wait_for(handed_over, limit_s=own_queues.HOME_TTL_S + 15, what="the hand-over")
        assert took <= own_queues.HOME_TTL_S + own_queues.HANDOVER_EVERY_S + 3
        assert {Job.fetch(j, connection=sync_redis).origin for j in (x_job, y_job)} == {
            queues.broadcast_queue_name(settings)}
        await wait_for(lambda: all_done(db, list(cycles)), limit_s=90, what="B running the handed-over jobs")
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
        await stop_worker(b)
    for p in (x, y):
        assert [len(await net.posted(c)) for c in p.chat_ids] == [2, 2]
        assert await net.connect_count(p.tg_user_id) == 2  # once on A, once on B


@pytest.mark.slow
async def test_a_stopping_worker_hands_its_queue_over(db, net, settings, pool, sync_redis) -> None:
    x, y = [await make_broadcaster(db, net, settings, 4_830_000 + i, groups=2) for i in range(2)]
    a, a_owner = await start_worker(settings, sync_redis)
    a_queue = Queue(own_queues.personal_queue_name(settings, a_owner), connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    b = None
    try:
        first = await routed_tick(db, pool, settings, sync_redis)
        await wait_for(lambda: all_done(db, first), what="the first cycles")
        for p in (x, y):
            await make_due(db, p.user_id)
        try:
            cycles = await suspended_tick(db, pool, settings, sync_redis)
            by_owner = {owner: cycle for cycle, owner in cycles.items()}
            x_job, y_job = (queues.send_job_id(by_owner[p.account_id], "0") for p in (x, y))
            place(sync_redis, x_job, a_queue.name)
            place(sync_redis, y_job, a_queue.name, at=datetime.now(UTC) + timedelta(seconds=6))
            await stop_worker(a)  # warm shutdown while its queue holds both
        finally:
            resume(sync_redis)
        assert (a_queue.count, ScheduledJobRegistry(queue=a_queue).count) == (0, 0)
        assert shared.job_ids == [x_job]
        assert ScheduledJobRegistry(queue=shared).get_job_ids() == [y_job]
        assert a_owner not in homes(settings, sync_redis)
        b, _ = await start_worker(settings, sync_redis)
        await wait_for(lambda: all_done(db, list(cycles)), limit_s=60, what="B running the handed-over jobs")
    finally:
        await stop_worker(a)
        if b is not None:
            await stop_worker(b)
    for p in (x, y):
        assert [len(await net.posted(c)) for c in p.chat_ids] == [2, 2]
