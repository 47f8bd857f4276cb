"""RQ queues and the enqueue helpers of the broadcast runtime.

No implicit global connection: every helper takes the sync Redis connection it uses. Job ids are
derived from the cycle (`send-<cycle_id>-<tag>`), so repeating an enqueue after a crash is a no-op,
and a per-cycle pointer names the job that currently carries the cycle, for the tick's recovery.
"""

from __future__ import annotations

import calendar
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis as SyncRedis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job, JobStatus
from rq.queue import EnqueueData
from rq.registry import DeferredJobRegistry, ScheduledJobRegistry
from rq.utils import get_call_string, str_to_date

from core.settings import Settings

# Job functions by their dotted names: enqueuing never imports the job bodies, and the worker imports
# them by these names. Jobs already in Redis carry these names, so a job body moved elsewhere must leave
# an importable name here behind (tests/test_rq_upgrade.py runs the names of the previous release).
SEND_BATCH = "jobs.send_batch.send_batch"
JOB_TIMEOUT_S = 900
RESULT_TTL_S = 600
_FAILURE_TTL_S = 86400
_POINTER_TTL_S = 8 * 24 * 3600  # longer than any cycle lives


def broadcast_queue_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}-broadcast"


def sync_redis(settings: Settings) -> SyncRedis:
    return SyncRedis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)


def broadcast_queue(settings: Settings, connection: SyncRedis) -> Queue:
    return Queue(broadcast_queue_name(settings), connection=connection)


def account_lock_key(settings: Settings, account_id: int) -> str:
    return f"{settings.redis_prefix}lock:account:{account_id}"


def _pointer_key(settings: Settings, cycle_id: int) -> str:
    return f"{settings.redis_prefix}cycle-job:{cycle_id}"


def _seq_key(settings: Settings, cycle_id: int) -> str:
    return f"{settings.redis_prefix}cycle-job-seq:{cycle_id}"


def send_job_id(cycle_id: int, tag: str) -> str:
    return f"send-{cycle_id}-{tag}"


@dataclass(frozen=True, slots=True)
class Send:
    """One `send_batch(cycle_id, attempt)` job to enqueue at `at` (see `enqueue_sends`)."""

    cycle_id: int
    at: datetime
    tag: str | None = None
    attempt: int = 0
    queue_name: str | None = None  # a worker's own queue (worker/own_queues.py); None: the shared one


def enqueue_send(
    settings: Settings, connection: SyncRedis, cycle_id: int, at: datetime, *,
    tag: str | None = None, attempt: int = 0, now: datetime | None = None, queue_name: str | None = None,
) -> str | None:
    """Run `send_batch(cycle_id, attempt)` at `at`. `tag` None takes the cycle's next sequence number
    (continuations, retries, recovery); tag "0" is the tick's first job. `queue_name`: a worker's own
    queue (worker/own_queues.py) instead of the shared one. Returns the job id, or None when that job already
    exists."""
    return enqueue_sends(settings, connection, [Send(cycle_id, at, tag, attempt, queue_name)], now=now)[0]


def enqueue_sends(
    settings: Settings, connection: SyncRedis, sends: Sequence[Send], *, now: datetime | None = None,
) -> list[str | None]:
    """`enqueue_send` for many jobs in a constant number of Redis round trips, whatever their number:
    the sequence numbers of the untagged ones (one pipeline), which jobs exist already (one pipeline),
    then every new job with its cycle pointer in one transaction. Returns each send's job id, or None
    where that job already exists (or came earlier in `sends`)."""
    if not sends:
        return []
    tags = [s.tag for s in sends]
    untagged = [n for n, s in enumerate(sends) if s.tag is None]
    if untagged:
        with connection.pipeline(transaction=False) as pipe:
            for n in untagged:
                pipe.incr(_seq_key(settings, sends[n].cycle_id))
                pipe.expire(_seq_key(settings, sends[n].cycle_id), _POINTER_TTL_S)
            counters = pipe.execute()[::2]
        for n, counter in zip(untagged, counters, strict=True):
            tags[n] = str(counter)
    job_ids = [send_job_id(s.cycle_id, str(tag)) for s, tag in zip(sends, tags, strict=True)]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.exists(Job.key_for(job_id))
        exists = [bool(e) for e in pipe.execute()]

    current = now or datetime.now(UTC)
    result: list[str | None] = []
    queues: dict[str, Queue] = {}
    immediate: dict[str, list[EnqueueData]] = {}
    scheduled: dict[str, _ScheduledJobs] = {}
    seen: set[str] = set()
    options: dict[str, Any] = {"timeout": JOB_TIMEOUT_S, "result_ttl": RESULT_TTL_S, "failure_ttl": _FAILURE_TTL_S}
    with connection.pipeline() as pipe:
        for send, job_id, present in zip(sends, job_ids, exists, strict=True):
            if present or job_id in seen:
                result.append(None)
                continue
            seen.add(job_id)
            name = send.queue_name or broadcast_queue_name(settings)
            queue = queues.setdefault(name, Queue(name, connection=connection))
            if send.at <= current:
                immediate.setdefault(name, []).append(
                    Queue.prepare_data(SEND_BATCH, (send.cycle_id, send.attempt), job_id=job_id, **options))
            else:
                at = send.at
                if at.microsecond:
                    # RQ's scheduled registry keeps whole seconds, truncated: round up so a job never runs
                    # early (a continuation waiting for a flood pause would wake, find nothing due, and spin).
                    at = at.replace(microsecond=0) + timedelta(seconds=1)
                if name not in scheduled:
                    scheduled[name] = _ScheduledJobs(queue, pipe, options)
                scheduled[name].add(job_id, (send.cycle_id, send.attempt), at)
            pipe.set(_pointer_key(settings, send.cycle_id), job_id, ex=_POINTER_TTL_S)
            result.append(job_id)
        for name, datas in immediate.items():
            queues[name].enqueue_many(datas, pipeline=pipe)
        if seen:
            pipe.execute()
    return result


class _ScheduledJobs:
    """Scheduled `send_batch` jobs of one queue, written as RQ's `Queue.schedule_job` writes them (the job
    hash, its id in the queue's scheduled registry, the queue in the set of queues) without building an RQ
    `Job` per job: a tick schedules up to 2,000 at once, and RQ's job construction (~60 µs, most of it
    re-validating the serializer) was most of the enqueue's Python. One job is built through RQ as the
    template; each job differs from it only in its id, its arguments (`data`) and its `description`, and
    those are made by RQ's own serializer and call-string helper. tests/test_rq_upgrade.py holds a job
    written here field for field equal to one RQ writes, and flags any change to the RQ code copied."""

    def __init__(self, queue: Queue, pipe: Pipeline, options: dict[str, Any]) -> None:
        self._template = queue.create_job(SEND_BATCH, args=(0, 0), status=JobStatus.SCHEDULED, **options)
        self._fields = self._template.to_dict()
        self._registry = ScheduledJobRegistry(queue=queue).key
        self._pipe = pipe
        pipe.sadd(Queue.redis_queues_keys, queue.key)

    def add(self, job_id: str, args: tuple[int, int], at: datetime) -> None:
        data = self._template.serializer.dumps((SEND_BATCH, None, args, {}))
        self._pipe.hset(Job.key_for(job_id), mapping={
            **self._fields, "data": zlib.compress(data), "description": get_call_string(SEND_BATCH, args, {})})
        self._pipe.zadd(self._registry, {job_id: calendar.timegm(at.utctimetuple())})


_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


# A started job whose account lock was free when looked at still counts as live if it started less than
# this long before: it may not have taken the lock yet (a batch reads its cycle first). Also covers
# a few seconds of clock difference between the worker that wrote `started_at` and the tick.
STARTED_GRACE = timedelta(seconds=10)


def live_cycles(settings: Settings, connection: SyncRedis, cycles: Sequence[tuple[int, Sequence[int]]],
                now: datetime | None = None) -> set[int]:
    """Which of these (cycle_id, the owner's account ids) still have a job that will carry them on, in
    at most three round trips.

    A waiting job counts only where its status says it waits: a queued job must be in its queue's list,
    a scheduled one in its queue's schedule. A worker listening to several queues pops with BLPOP, which
    holds the popped id nowhere but in the worker until the job is marked started; a worker SIGKILLed in
    between leaves a job hash that says "queued" forever, in no list (seen in the soak). Such a cycle is
    taken up again; were the job still about to start, the cycle would have two jobs, which the account
    lock and the claim's SKIP LOCKED make harmless.

    A job marked started none of whose account locks is held is treated as dead: a SIGKILLed worker leaves its job
    "started" for a long while, but its lock expires within LOCK_TTL because nobody renews it. A pointer
    to a job hash that is gone (a Redis flush) is no live job.

    The reads are ordered so that a batch ending meanwhile is not taken for a dead one: the locks are
    read first, and the pointers after them in the same pipeline (Redis runs it in order). A batch
    enqueues its continuation, moving the pointer, before it lets go of its lock, so a lock found free
    means the pointer read after it already names the continuation; a batch that finished its cycle did so
    before letting go too, which the caller checks in PostgreSQL (`db.tick.still_stalled`). A job that
    started after the locks were read (or just before, not holding its lock yet) counts by its
    `started_at` (STARTED_GRACE), against `now` (the tick's time; the clock by default)."""
    if not cycles:
        return set()
    looked_at = now or datetime.now(UTC)
    with connection.pipeline(transaction=False) as pipe:
        for _, account_ids in cycles:
            if account_ids:
                pipe.exists(*(account_lock_key(settings, a) for a in account_ids))
        for cycle_id, _ in cycles:
            pipe.get(_pointer_key(settings, cycle_id))
        replies = pipe.execute()
    held_replies = iter(replies[: len(replies) - len(cycles)])
    held = {cycle_id for cycle_id, account_ids in cycles if account_ids and next(held_replies)}
    pointers = replies[len(replies) - len(cycles):]
    pointed = [(cycle_id, _text(raw)) for (cycle_id, _), raw in zip(cycles, pointers, strict=True)
               if raw is not None]
    with connection.pipeline(transaction=False) as pipe:
        for _, job_id in pointed:
            pipe.hmget(Job.key_for(job_id), ["status", "origin", "started_at"])
        fields = pipe.execute()
    live: set[int] = set()
    waiting: list[int] = []
    with connection.pipeline(transaction=False) as pipe:
        for (cycle_id, job_id), (raw_status, raw_origin, raw_started) in zip(pointed, fields, strict=True):
            status, origin = _status(raw_status), _text(raw_origin) if raw_origin is not None else ""
            if status == JobStatus.QUEUED:
                pipe.lpos(Queue.redis_queue_namespace_prefix + origin, job_id)
                waiting.append(cycle_id)
            elif status in _WAITING:  # scheduled (or deferred, which tgcast does not use): in its registry
                registry = ScheduledJobRegistry if status == JobStatus.SCHEDULED else DeferredJobRegistry
                pipe.zscore(registry.key_template.format(origin), job_id)
                waiting.append(cycle_id)
            elif status == JobStatus.STARTED and (cycle_id in held or _started_since(raw_started, looked_at)):
                live.add(cycle_id)
        found = pipe.execute() if waiting else []
    live.update(cycle_id for cycle_id, where in zip(waiting, found, strict=True) if where is not None)
    return live


def _started_since(raw: bytes | str | None, looked_at: datetime) -> bool:
    """Whether a job's `started_at` (RQ's UTC timestamp) is within STARTED_GRACE of `looked_at` or later."""
    if raw is None:
        return False
    try:
        started = str_to_date(raw)  # as RQ reads it back
    except ValueError:
        return False
    return started >= looked_at - STARTED_GRACE


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _status(raw: bytes | str | None) -> JobStatus | None:
    if raw is None:
        return None
    try:
        return JobStatus(_text(raw))
    except ValueError:
        return None


def cont_step_key(settings: Settings, cycle_id: int) -> str:
    """The counter of a cycle's continuations (their jitter is fixed per step)."""
    return f"{settings.redis_prefix}cycle-cont:{cycle_id}"


def forget_cycle(settings: Settings, connection: SyncRedis, cycle_id: int) -> None:
    connection.delete(_pointer_key(settings, cycle_id), _seq_key(settings, cycle_id),
                      cont_step_key(settings, cycle_id))


# ---- announcements (admin) ------------------------------------------------------------------------

ANNOUNCE = "jobs.announce.run_announcement"
JOB_FUNCTIONS = (SEND_BATCH, ANNOUNCE)
ANNOUNCE_TIMEOUT_S = 6 * 3600  # ~25 users/s: hours for a very large audience


def announce_queue_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}-announce"


def announce_job_id(announcement_id: int) -> str:
    return f"announce-{announcement_id}"


def enqueue_announcement(settings: Settings, connection: SyncRedis, announcement_id: int) -> str | None:
    """Job id from the announcement, so a repeated confirm cannot queue it twice. Returns the job id,
    or None when it already exists."""
    job_id = announce_job_id(announcement_id)
    if Job.exists(job_id, connection=connection):
        return None
    Queue(announce_queue_name(settings), connection=connection).enqueue(
        ANNOUNCE, announcement_id, job_id=job_id, job_timeout=ANNOUNCE_TIMEOUT_S, result_ttl=RESULT_TTL_S,
        failure_ttl=7 * 86400,
    )
    return job_id
