"""Many send jobs in a few Redis round trips (`worker.queues.enqueue_sends`, `live_cycles`): the same jobs,
queues, scheduled times and pointers as one `enqueue_send` at a time, a repeat is a no-op, and the
tick puts a cycle's first job on its account's home queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.connection import Connection
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.utils import utcformat

from core.settings import Settings
from jobs.tick import tick
from tests.runtime_helpers import make_broadcaster, utcnow
from worker import own_queues, queues
from worker.queues import Send

# The job hash fields that carry a clock reading, not a property of the job.
_CLOCK_FIELDS = {b"created_at", b"enqueued_at", b"last_heartbeat"}


def one_at_a_time(settings: Settings, connection: SyncRedis, send: Send, now: datetime) -> str | None:
    """The single-job path as it was before the batched one: the reference the batch must match."""
    tag = send.tag
    if tag is None:
        tag = str(connection.incr(f"{settings.redis_prefix}cycle-job-seq:{send.cycle_id}"))
        connection.expire(f"{settings.redis_prefix}cycle-job-seq:{send.cycle_id}", 8 * 24 * 3600)
    job_id = f"send-{send.cycle_id}-{tag}"
    if Job.exists(job_id, connection=connection):
        return None
    queue = Queue(send.queue_name or f"{settings.queue_prefix}-broadcast", connection=connection)
    options = {"job_id": job_id, "job_timeout": 900, "result_ttl": 600, "failure_ttl": 86400}
    if send.at <= now:
        queue.enqueue("jobs.send_batch.send_batch", send.cycle_id, send.attempt, **options)
    else:
        at = send.at
        if at.microsecond:
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        queue.enqueue_at(at, "jobs.send_batch.send_batch", send.cycle_id, send.attempt, **options)
    connection.set(f"{settings.redis_prefix}cycle-job:{send.cycle_id}", job_id, ex=8 * 24 * 3600)
    return job_id


def snapshot(connection: Any) -> dict[bytes, object]:  # redis-py types sync and async replies as one
    """Every key of the Redis db with its value (job hashes without their clock fields, sorted sets with
    their scores, lists in order), and whether it expires."""
    state: dict[bytes, object] = {}
    for key in sorted(connection.keys("*")):
        kind = connection.type(key)
        value: object
        if kind == b"hash":
            value = {k: v for k, v in connection.hgetall(key).items() if k not in _CLOCK_FIELDS}
        elif kind == b"zset":
            value = connection.zrange(key, 0, -1, withscores=True)
        elif kind == b"list":
            value = connection.lrange(key, 0, -1)
        elif kind == b"set":
            value = sorted(connection.smembers(key))
        else:
            value = connection.get(key)
        state[key] = (kind, value, connection.ttl(key) > 0)
    return state


def mixed_sends(settings: Settings, now: datetime) -> list[Send]:
    home = f"{settings.queue_prefix}-broadcast@w1"
    return [
        Send(11, now - timedelta(seconds=5), tag="0"),                                   # due: queued
        Send(12, now + timedelta(seconds=30, microseconds=250_000), tag="0"),            # rounded up
        Send(13, (now + timedelta(minutes=2)).replace(microsecond=0), tag="0"),          # whole second
        Send(14, now, tag="0", queue_name=home),                                         # home queue
        Send(15, now + timedelta(seconds=9, microseconds=1), tag="0", queue_name=home),  # home, later
        Send(16, now - timedelta(minutes=1)),                                            # next seq
        Send(16, now + timedelta(seconds=3, microseconds=5), attempt=2),                 # and the one after
        Send(17, now, tag="0", attempt=4),
        Send(11, now, tag="0"),                                                          # repeated in the batch
    ]


def test_a_batch_gives_the_jobs_of_one_enqueue_at_a_time(settings, sync_redis) -> None:
    now = datetime.now(UTC).replace(microsecond=500_000)
    sends = mixed_sends(settings, now)
    # one of them exists already, either way
    assert one_at_a_time(settings, sync_redis, Send(17, now, tag="0", attempt=4), now) is not None
    base = snapshot(sync_redis)
    expected_ids = [one_at_a_time(settings, sync_redis, s, now) for s in sends]
    expected = snapshot(sync_redis)
    sync_redis.flushdb()
    assert one_at_a_time(settings, sync_redis, Send(17, now, tag="0", attempt=4), now) is not None
    assert snapshot(sync_redis) == base

    ids = queues.enqueue_sends(settings, sync_redis, sends, now=now)

    assert ids == expected_ids
    assert ids[-2:] == [None, None] and None not in ids[:-2]
    assert snapshot(sync_redis) == expected
    # and, spelled out: the home queue holds its jobs, the shared queue the others
    home = Queue(f"{settings.queue_prefix}-broadcast@w1", connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    assert home.get_job_ids() == ["send-14-0"]
    assert ScheduledJobRegistry(queue=home).get_job_ids() == ["send-15-0"]
    assert shared.get_job_ids() == ["send-17-0", "send-11-0", "send-16-1"]
    scheduled = ScheduledJobRegistry(queue=shared)
    assert scheduled.get_scheduled_time("send-12-0") == now.replace(microsecond=0) + timedelta(seconds=31)
    assert scheduled.get_scheduled_time("send-16-2") == now.replace(microsecond=0) + timedelta(seconds=4)
    job = Job.fetch("send-16-2", connection=sync_redis)
    assert (job.func_name, job.args, job.timeout, job.origin) == ("jobs.send_batch.send_batch", (16, 2), 900,
                                                                  shared.name)
    assert job.get_status() == JobStatus.SCHEDULED
    assert sync_redis.get(f"{settings.redis_prefix}cycle-job:16") == b"send-16-2"


def test_a_repeated_batch_is_a_no_op(settings, sync_redis) -> None:
    now = datetime.now(UTC)
    sends = [s for s in mixed_sends(settings, now) if s.tag is not None]
    first = queues.enqueue_sends(settings, sync_redis, sends, now=now)
    state = snapshot(sync_redis)
    assert queues.enqueue_sends(settings, sync_redis, sends, now=now) == [None] * len(sends)
    assert snapshot(sync_redis) == state
    assert len([i for i in first if i is not None]) == len(sends) - 1  # the in-batch repeat


def test_the_single_enqueue_takes_a_queue_name(settings, sync_redis) -> None:
    name = f"{settings.queue_prefix}-broadcast@w2"
    assert queues.enqueue_send(settings, sync_redis, 21, utcnow(), tag="0", queue_name=name) == "send-21-0"
    assert Queue(name, connection=sync_redis).get_job_ids() == ["send-21-0"]
    assert queues.broadcast_queue(settings, sync_redis).get_job_ids() == []


def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    send = Connection.send_packed_command

    def counted(self, command, check_health=True):
        calls[0] += 1
        return send(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", counted)
    return calls


def test_round_trips_do_not_grow_with_the_number_of_jobs(settings, sync_redis, monkeypatch) -> None:
    now = datetime.now(UTC)
    sync_redis.ping()  # connected before counting
    queues.enqueue_sends(settings, sync_redis, [Send(1, now, tag="0")], now=now)  # RQ reads the version once

    def batch(first: int, n: int) -> list[Send]:
        return [Send(c, now + timedelta(seconds=c % 2 * 30), tag=None if c % 3 else "0",
                     queue_name=f"{settings.queue_prefix}-broadcast@w{c % 2}" if c % 5 == 0 else None)
                for c in range(first, first + n)]

    calls = round_trips(monkeypatch)
    queues.enqueue_sends(settings, sync_redis, batch(100, 6), now=now)
    few, calls[0] = calls[0], 0
    queues.enqueue_sends(settings, sync_redis, batch(1000, 60), now=now)
    assert calls[0] == few <= 4


def test_live_cycles(settings, sync_redis) -> None:
    """A cycle is carried on by a waiting job, or a started one whose account lock is held; not by a
    pointer to nothing, a job gone with a flush, a finished job, or a started one without its lock."""
    now = datetime.now(UTC)
    cycles = {1: [101], 2: [102], 3: [103], 4: [104], 5: [105, 205], 6: [106], 7: [107]}  # cycle -> accounts
    queues.enqueue_sends(settings, sync_redis, [Send(2, now, tag="0"), Send(3, now + timedelta(minutes=1), tag="0")]
                         + [Send(c, now, tag="0") for c in (4, 5, 6, 7)], now=now)
    for cycle_id in (5, 6):
        Job.fetch(f"send-{cycle_id}-0", connection=sync_redis).set_status(JobStatus.STARTED)
    sync_redis.set(queues.account_lock_key(settings, 205), "w")  # one of the owner's accounts is enough
    Job.fetch("send-7-0", connection=sync_redis).set_status(JobStatus.FINISHED)
    sync_redis.delete(Job.key_for("send-4-0"))  # lost, its pointer stays
    assert queues.live_cycles(settings, sync_redis, list(cycles.items())) == {2, 3, 5}
    assert queues.live_cycles(settings, sync_redis, []) == set()


def test_a_started_job_not_yet_holding_its_lock_counts_by_when_it_started(settings, sync_redis) -> None:
    """A batch reads its cycle before it takes its account lock: a job that started just now without
    the lock is live; one that started past the grace (a killed worker's) without it is not."""
    now = datetime.now(UTC)
    queues.enqueue_sends(settings, sync_redis, [Send(1, now, tag="0"), Send(2, now, tag="0")], now=now)
    for cycle_id, started in ((1, now), (2, now - queues.STARTED_GRACE - timedelta(seconds=1))):
        job_id = f"send-{cycle_id}-0"
        Job.fetch(job_id, connection=sync_redis).set_status(JobStatus.STARTED)
        sync_redis.hset(Job.key_for(job_id), "started_at", utcformat(started))
    assert queues.live_cycles(settings, sync_redis, [(1, [101]), (2, [102])]) == {1}


def test_a_batch_ending_between_the_reads_is_not_taken_for_a_dead_one(settings, sync_redis, monkeypatch) -> None:
    """A batch moves its cycle's pointer to its continuation, then lets go of its lock. Here it does both
    right after the check's first round trip: read in the other order (the pointer, then the lock), the
    check found the old job started and its lock free, and enqueued a second job for the cycle."""
    from redis.client import Pipeline

    now = datetime.now(UTC)
    queues.enqueue_sends(settings, sync_redis, [Send(1, now, tag="0")], now=now)
    Job.fetch("send-1-0", connection=sync_redis).set_status(JobStatus.STARTED)
    sync_redis.hset(Job.key_for("send-1-0"), "started_at", "2020-01-01T00:00:00.000000Z")
    lock = queues.account_lock_key(settings, 101)
    sync_redis.set(lock, "batch")
    original = Pipeline.execute
    rounds: list[int] = []

    def execute(self, *args, **kwargs):
        reply = original(self, *args, **kwargs)
        rounds.append(1)
        if len(rounds) == 1:  # the batch ends: its continuation, then its lock
            monkeypatch.setattr(Pipeline, "execute", original)
            queues.enqueue_sends(settings, sync_redis, [Send(1, now + timedelta(seconds=2))], now=now)
            sync_redis.delete(lock)
            monkeypatch.setattr(Pipeline, "execute", execute)
        return reply

    monkeypatch.setattr(Pipeline, "execute", execute)
    live = queues.live_cycles(settings, sync_redis, [(1, [101])])
    monkeypatch.setattr(Pipeline, "execute", original)
    assert len(rounds) >= 2 and live == {1}


def test_a_waiting_job_counts_only_where_its_status_says_it_waits(settings, sync_redis) -> None:
    """A worker popping with BLPOP (several queues) and SIGKILLed before the job started leaves a hash
    saying "queued" in no list; a scheduled job dropped from its registry likewise. Neither carries its
    cycle; the same jobs where they belong (the shared queue, a worker's own queue) do."""
    now = datetime.now(UTC)
    own = f"{settings.queue_prefix}-broadcast@w1"
    queues.enqueue_sends(settings, sync_redis, [
        Send(1, now, tag="0"), Send(2, now + timedelta(minutes=1), tag="0"),
        Send(3, now, tag="0", queue_name=own), Send(4, now + timedelta(minutes=1), tag="0", queue_name=own),
        Send(5, now, tag="0", queue_name=own), Send(6, now + timedelta(minutes=1), tag="0", queue_name=own),
    ], now=now)
    cycles = [(c, [100 + c]) for c in range(1, 7)]
    assert queues.live_cycles(settings, sync_redis, cycles) == {1, 2, 3, 4, 5, 6}
    popped = sync_redis.blpop([Queue(own, connection=sync_redis).key], 1)  # the queued job of cycle 3 first
    assert popped is not None and popped[1] == b"send-3-0"
    sync_redis.lrem(Queue(own, connection=sync_redis).key, 0, "send-5-0")
    ScheduledJobRegistry(queue=Queue(own, connection=sync_redis)).remove("send-6-0")
    assert queues.live_cycles(settings, sync_redis, cycles) == {1, 2, 4}


async def test_the_tick_puts_a_first_job_on_its_accounts_home_queue(db, net, settings, pool, sync_redis,
                                                                    monkeypatch) -> None:
    homed = await make_broadcaster(db, net, settings, 601, groups=1)
    await make_broadcaster(db, net, settings, 602, groups=1)
    home = f"{settings.queue_prefix}-broadcast@w9"
    asked: list[set[int]] = []

    async def account_of(owner_id: int) -> int:
        return int((await (await db.execute("SELECT id FROM accounts WHERE owner_id = %(o)s",
                                            {"o": owner_id})).fetchone())[0])

    accounts = {601: await account_of(601), 602: await account_of(602)}

    def home_queues(settings_, connection, account_ids):
        asked.append(set(account_ids))
        return {accounts[homed.user_id]: home}

    monkeypatch.setattr(own_queues, "home_queues", home_queues)
    summary = await tick(pool, settings)
    assert summary.enqueued == 2 and asked == [{accounts[601], accounts[602]}]
    by_owner = dict(await (await db.execute("SELECT owner_id, id FROM cycles")).fetchall())
    assert Queue(home, connection=sync_redis).get_job_ids() == [f"send-{by_owner[601]}-0"]
    assert queues.broadcast_queue(settings, sync_redis).get_job_ids() == [f"send-{by_owner[602]}-0"]


async def test_recovery_enqueues_lost_cycles_on_the_shared_queue(db, net, settings, pool, sync_redis,
                                                                  monkeypatch) -> None:
    """A lost job may have died with the worker that still looks like its account's home: the
    recovery puts it where any live worker takes it."""
    await make_broadcaster(db, net, settings, 603, groups=1)
    await make_broadcaster(db, net, settings, 604, groups=1)
    first = await tick(pool, settings)
    assert first.enqueued == 2
    sync_redis.flushdb()
    monkeypatch.setattr(own_queues, "home_queues", lambda s, c, ids: {i: f"{s.queue_prefix}-broadcast@w8" for i in ids})
    later = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert later.recovered == 2
    by_owner = dict(await (await db.execute("SELECT owner_id, id FROM cycles")).fetchall())
    assert sorted(queues.broadcast_queue(settings, sync_redis).get_job_ids()) == sorted(
        f"send-{by_owner[o]}-1" for o in (603, 604))
    again = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert again.recovered == 0
