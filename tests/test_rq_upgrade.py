"""What the worker runtime (`worker/`) relies on in RQ beyond its documented API, checked in one place
(docs/worker.md, "What it relies on in RQ"). After an RQ upgrade this file fails first, naming what
changed and which of our files to review; update the expectation here only once that file is right.

Three kinds of checks:

- the private `Worker` and `RQScheduler` methods the runtime overrides or calls, with their signatures;
- the source of the RQ methods whose logic the runtime copies or replaces, as a digest: any change to
  them, even a harmless one, asks for the copy to be reviewed;
- what RQ keeps in Redis, observed on a real Redis: key names, the shapes of the queue and registries,
  the job hash fields, which the Lua scripts and the recovery read and write directly.

Plus the names the jobs already waiting in Redis carry: the job functions of the previous release
must still import and run on the job loop.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rq
from redis import Redis as SyncRedis
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
    clean_registries,
)
from rq.scheduler import RQScheduler
from rq.utils import import_attribute
from rq.worker import BaseWorker, SimpleWorker, WorkerStatus

from core.settings import Settings
from worker import own_queues, queues
from worker.scheduler import FastPollingScheduler, SchedulerThread

# ---- the private methods the runtime overrides or calls ---------------------------------------------

# name -> (the signature RQ 3.0 has, where we depend on it)
SIGNATURES: dict[str, tuple[Any, str, str]] = {
    "SimpleWorker.work": (SimpleWorker.work, "(self, burst: 'bool' = False, logging_level: 'str | None' = None, date_format: 'str' = '%H:%M:%S', log_format: 'str' = '%(asctime)s %(message)s', max_jobs: 'int | None' = None, max_idle_time: 'int | None' = None, with_scheduler: 'bool' = False, dequeue_strategy: 'DequeueStrategy' = <DequeueStrategy.DEFAULT: 'default'>) -> 'bool'", "worker/loop_worker.py (LoopWorker.work replaces it)"),  # noqa: E501
    "SimpleWorker.bootstrap": (SimpleWorker.bootstrap, "(self, logging_level: 'str | None' = 'INFO', date_format: 'str' = '%H:%M:%S', log_format: 'str' = '%(asctime)s %(message)s')", "worker/loop_worker.py"),  # noqa: E501
    "SimpleWorker._start_scheduler": (SimpleWorker._start_scheduler, "(self, burst: 'bool' = False, logging_level: 'str | None' = 'INFO', date_format: 'str' = '%H:%M:%S', log_format: 'str' = '%(asctime)s %(message)s')", "worker/process.py (BroadcastWorker overrides it)"),  # noqa: E501
    "SimpleWorker._install_signal_handlers": (SimpleWorker._install_signal_handlers, "(self)", "worker/loop_worker.py"),
    "SimpleWorker.check_for_suspension": (SimpleWorker.check_for_suspension, "(self, burst: 'bool')", "worker/loop_worker.py"),  # noqa: E501
    "SimpleWorker.run_maintenance_tasks": (SimpleWorker.run_maintenance_tasks, "(self)", "worker/loop_worker.py"),
    "SimpleWorker.teardown": (SimpleWorker.teardown, "(self)", "worker/loop_worker.py"),
    "SimpleWorker._shutdown": (SimpleWorker._shutdown, "(self)", "worker/loop_worker.py (overridden: the warm shutdown)"),  # noqa: E501
    "SimpleWorker.stop_scheduler": (SimpleWorker.stop_scheduler, "(self)", "worker/process.py (overridden: joins the thread)"),  # noqa: E501
    "SimpleWorker.set_state": (SimpleWorker.set_state, "(self, state: 'str', pipeline: 'Pipeline | None' = None)", "worker/loop_worker.py"),  # noqa: E501
    "SimpleWorker.set_shutdown_requested_date": (SimpleWorker.set_shutdown_requested_date, "(self)", "worker/loop_worker.py"),  # noqa: E501
    "SimpleWorker.heartbeat": (SimpleWorker.heartbeat, "(self, timeout: 'int | None' = None, pipeline: 'Pipeline | None' = None)", "worker/loop_worker.py (_beat)"),  # noqa: E501
    "SimpleWorker.get_heartbeat_ttl": (SimpleWorker.get_heartbeat_ttl, "(self, job: 'Job', working_time: 'float' = 0.0) -> 'int'", "worker/loop_worker.py (_beat)"),  # noqa: E501
    "SimpleWorker.prepare_execution": (SimpleWorker.prepare_execution, "(self, job: 'Job') -> 'Execution'", "worker/loop_worker.py (_start)"),  # noqa: E501
    "SimpleWorker.prepare_job_execution": (SimpleWorker.prepare_job_execution, "(self, job: 'Job', remove_from_intermediate_queue: 'bool' = False) -> 'None'", "worker/loop_worker.py (_start)"),  # noqa: E501
    "SimpleWorker._finalize_success": (SimpleWorker._finalize_success, "(self, job: 'Job', queue: 'Queue', execution: 'Execution', return_value: 'Any') -> 'None'", "worker/loop_worker.py (_finish)"),  # noqa: E501
    "SimpleWorker._finalize_failure": (SimpleWorker._finalize_failure, "(self, job: 'Job', queue: 'Queue', execution: 'Execution', exc_info: 'tuple[type[BaseException] | None, BaseException | None, TracebackType | None]') -> 'None'", "worker/loop_worker.py (_finish, _put_back)"),  # noqa: E501
    "Queue.dequeue_any": (Queue.dequeue_any, "(queues: 'Iterable[Queue]', timeout: 'int | None', connection: 'Redis', job_class: 'type[Job] | None' = None, serializer: 'Serializer | str | None' = None, death_penalty_class: 'type[BaseDeathPenalty] | None' = None) -> 'tuple[Job, Queue] | None'", "worker/loop_worker.py (_take_ready, _wait)"),  # noqa: E501
    "Queue.prepare_data": (Queue.prepare_data, "(func: 'FunctionReferenceType', args: 'tuple | list | None' = None, kwargs: 'dict | None' = None, timeout: 'int | None' = None, result_ttl: 'int | None' = None, ttl: 'int | None' = None, failure_ttl: 'int | None' = None, description: 'str | None' = None, depends_on: 'JobDependencyType | None' = None, job_id: 'str | None' = None, at_front: 'bool' = False, meta: 'dict | None' = None, retry: 'Retry | None' = None, on_success: 'Callback | Callable | None' = None, on_failure: 'Callback | Callable | None' = None, on_stopped: 'Callback | Callable | None' = None, repeat: 'Repeat | None' = None, webhooks: 'Sequence[Webhook] | None' = None) -> 'EnqueueData'", "worker/queues.py (enqueue_sends)"),  # noqa: E501
    "Queue.enqueue_many": (Queue.enqueue_many, "(self, job_datas: 'Iterable[EnqueueData]', pipeline: 'Pipeline | None' = None, group_id: 'str | None' = None) -> 'list[Job]'", "worker/queues.py (enqueue_sends)"),  # noqa: E501
    "Queue.schedule_job": (Queue.schedule_job, "(self, job: 'Job', datetime: 'datetime', pipeline: 'Pipeline | None' = None, unique: 'bool' = False) -> 'Job'", "worker/queues.py (enqueue_sends)"),  # noqa: E501
    "Queue.delete": (Queue.delete, "(self, delete_jobs: 'bool' = True)", "worker/process.py (_take_over)"),
    "Job.heartbeat": (Job.heartbeat, "(self, timestamp: 'datetime', ttl: 'int', pipeline: 'Pipeline | None' = None, xx: 'bool' = False)", "worker/loop_worker.py (_beat)"),  # noqa: E501
    "Job.requeue": (Job.requeue, "(self, at_front: 'bool' = False) -> 'Job'", "worker/loop_worker.py (_put_back)"),
    "Execution.heartbeat": (Execution.heartbeat, "(self, started_job_registry: 'StartedJobRegistry', ttl: 'int', pipeline: 'Pipeline')", "worker/loop_worker.py (_beat)"),  # noqa: E501
    "IntermediateQueue.cleanup": (IntermediateQueue.cleanup, "(self, worker: 'BaseWorker', queue: 'Queue') -> 'None'", "worker/process.py (_take_over)"),  # noqa: E501
    "IntermediateQueue.get_job_ids": (IntermediateQueue.get_job_ids, "(self) -> 'list[str]'", "worker/process.py (_take_over)"),  # noqa: E501
    "clean_registries": (clean_registries, "(queue: 'Queue', exception_handlers: 'list | None' = None)", "worker/process.py (_take_over)"),  # noqa: E501
    "RQScheduler.__init__": (RQScheduler.__init__, "(self, queues, connection: 'Redis', interval=1, logging_level: 'str | int' = 20, date_format='%H:%M:%S', log_format='%(asctime)s %(message)s', serializer=None, name: 'str | None' = None)", "worker/process.py (_start_scheduler)"),  # noqa: E501
    "RQScheduler.acquire_locks": (RQScheduler.acquire_locks, "(self, auto_start=False)", "worker/scheduler.py"),
    "RQScheduler.release_locks": (RQScheduler.release_locks, "(self)", "worker/process.py (_start_scheduler)"),
    "RQScheduler.register_birth": (RQScheduler.register_birth, "(self) -> 'None'", "worker/scheduler.py"),
    "RQScheduler.register_death": (RQScheduler.register_death, "(self) -> 'bool'", "worker/process.py (_start_scheduler)"),  # noqa: E501
    "RQScheduler.heartbeat": (RQScheduler.heartbeat, "(self)", "worker/scheduler.py"),
    "RQScheduler.enqueue_scheduled_jobs": (RQScheduler.enqueue_scheduled_jobs, "(self)", "worker/scheduler.py"),
    "RQScheduler.request_stop": (RQScheduler.request_stop, "(self, signum=None, frame=None)", "worker/scheduler.py, worker/loop_worker.py"),  # noqa: E501
    "RQScheduler.stop": (RQScheduler.stop, "(self)", "worker/scheduler.py"),
    "RQScheduler.start": (RQScheduler.start, "(self)", "worker/scheduler.py (overridden: a thread)"),
    "RQScheduler.work": (RQScheduler.work, "(self)", "worker/scheduler.py (overridden: the fast poll)"),
    "RQScheduler._install_signal_handlers": (RQScheduler._install_signal_handlers, "(self)", "worker/scheduler.py (overridden)"),  # noqa: E501
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_the_private_methods_we_use_keep_their_signature(name: str) -> None:
    function, expected, ours = SIGNATURES[name]
    assert str(inspect.signature(function)) == expected, (
        f"RQ {rq.__version__} changed the signature of {name}: review {ours}")


def test_the_attributes_we_read_are_there(sync_redis: SyncRedis) -> None:
    """Instance state of RQ's worker and scheduler the runtime reads or sets directly."""
    worker = SimpleWorker([Queue("upgrade-attrs", connection=sync_redis)], connection=sync_redis)
    for attribute in ("_stop_requested", "scheduler", "_exc_handlers", "job_monitoring_interval", "queue_class",
                      "job_class", "serializer", "last_cleaned_at", "should_run_maintenance_tasks"):
        assert hasattr(worker, attribute), f"RQ's worker has no {attribute}: review worker/loop_worker.py"
    assert hasattr(Queue, "DEFAULT_TIMEOUT") and {WorkerStatus.BUSY, WorkerStatus.IDLE}
    scheduler = RQScheduler(["upgrade-attrs"], connection=sync_redis)
    for attribute in ("_queue_names", "_process", "_status", "_stop_requested", "lock_acquisition_time",
                      "acquired_locks", "interval", "log"):
        assert hasattr(scheduler, attribute), f"RQ's scheduler has no {attribute}: review worker/scheduler.py"
    assert scheduler.Status.STARTED and scheduler.interval == 1


# ---- the RQ methods whose logic we copy or replace -----------------------------------------------

# name -> (sha256 of its source, first 16 hex digits, in RQ 3.0.0; what of ours copies or replaces it)
COPIED: dict[str, tuple[Any, str, str]] = {
    "BaseWorker.work": (BaseWorker.work, "7c1d51ba20fed3d7",
                        "LoopWorker.work (worker/loop_worker.py): the main loop, its steps and their order"),
    "BaseWorker.perform_job": (BaseWorker.perform_job, "38fcb4d8c0f8f1f8",
                               "LoopWorker._start/_finish (worker/loop_worker.py): the bookkeeping around a job"),
    "BaseWorker.handle_job_success": (BaseWorker.handle_job_success, "0e9d6fdad8a3a8e7",
                                      "LoopWorker._finish, which calls _finalize_success directly"),
    "BaseWorker.handle_job_failure": (BaseWorker.handle_job_failure, "ad545766f1e0b09a",
                                      "LoopWorker._finish/_put_back, which call _finalize_failure directly"),
    "SimpleWorker.execute_job": (SimpleWorker.execute_job, "19f81ccd38bbdc38",
                                 "LoopWorker._start (worker/loop_worker.py): a task on the job loop instead"),
    "BaseWorker._shutdown": (BaseWorker._shutdown, "19ec3372caea3e3c",
                             "LoopWorker._shutdown (worker/loop_worker.py): the warm shutdown"),
    "BaseWorker.request_stop": (BaseWorker.request_stop, "d06386e1ca6caca3",
                                "LoopWorker._shutdown, which RQ's signal handler calls"),
    "BaseWorker.stop_scheduler": (BaseWorker.stop_scheduler, "557bd44d53249107",
                                  "BroadcastWorker.stop_scheduler (worker/process.py): a thread, joined"),
    "BaseWorker._start_scheduler": (BaseWorker._start_scheduler, "a13b7b6ec099d91d",
                                    "BroadcastWorker._start_scheduler (worker/process.py): FastPollingScheduler"),
    "BaseWorker.run_maintenance_tasks": (BaseWorker.run_maintenance_tasks, "284cd29591c4499e",
                                         "SchedulerThread (worker/scheduler.py): a dead scheduler is found by "
                                         "`_process.is_alive()` and restarted through acquire_locks"),
    "RQScheduler.acquire_locks": (RQScheduler.acquire_locks, "5308b978aacb87f2",
                                  "FastPollingScheduler.start (worker/scheduler.py), which auto_start calls"),
    "Queue.schedule_job": (Queue.schedule_job, "caab96e840d80048",
                           "_ScheduledJobs (worker/queues.py): the same writes, without a Job per job"),
    "Queue._persist_job": (Queue._persist_job, "4972eba87aee36b3", "_ScheduledJobs (worker/queues.py)"),
    "ScheduledJobRegistry.schedule": (ScheduledJobRegistry.schedule, "c9f3cbac95234bc5",
                                      "_ScheduledJobs.add (worker/queues.py): the score"),
    "Job.data": (inspect.getattr_static(Job, "data").fget, "a7994aacbd1323b7",
                 "_ScheduledJobs.add (worker/queues.py): the serialized call"),
    "Job.create": (Job.create, "3c4d14b1efd25c45",
                   "_ScheduledJobs.add (worker/queues.py): the description, the only per-job field it sets"),
    "RQScheduler.work": (RQScheduler.work, "34b80e05ebc5bc8f", "FastPollingScheduler.work (worker/scheduler.py)"),
    "RQScheduler.start": (RQScheduler.start, "eb4f7e87507912ff", "FastPollingScheduler.start (worker/scheduler.py)"),
    "RQScheduler.should_reacquire_locks": (inspect.getattr_static(RQScheduler, "should_reacquire_locks").fget,
                                           "fca189a6421616c3",
                                           "FastPollingScheduler.should_reacquire_locks (worker/scheduler.py)"),
}


def _digest(function: Any) -> str:
    return hashlib.sha256(textwrap.dedent(inspect.getsource(function)).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(COPIED))
def test_the_rq_code_we_copy_or_replace_is_unchanged(name: str) -> None:
    function, expected, ours = COPIED[name]
    assert _digest(function) == expected, (
        f"RQ {rq.__version__} changed {name}; review {ours} against it, then update its digest here")


# ---- what RQ keeps in Redis ---------------------------------------------------------------------------


def test_key_names() -> None:
    """The Lua scripts (worker/own_queues.py) and the recovery (worker/queues.py, `live_cycles`) name
    RQ's keys themselves."""
    assert Queue.redis_queue_namespace_prefix == "rq:queue:"
    assert Queue.redis_queues_keys == "rq:queues"
    assert Job.redis_job_namespace_prefix == "rq:job:"
    assert Job.key_for("x") == "rq:job:x"
    assert ScheduledJobRegistry.key_template == "rq:scheduled:{0}"
    assert DeferredJobRegistry.key_template == "rq:deferred:{0}"
    assert RQScheduler.get_locking_key("q") == "rq:scheduler-lock:q"
    assert {s.value for s in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED)} == {
        "queued", "scheduled", "deferred", "started"}


def test_queue_and_job_hash_shapes(sync_redis: SyncRedis) -> None:
    """A queue is a list of job ids, known in the set of queue keys; a job is a hash whose `origin` and
    `status` fields the recovery and the hand-over read and write."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=sync_redis)
    job = queue.enqueue("builtins.print", 1)
    assert queue.key == f"rq:queue:{name}"
    assert sync_redis.type(queue.key) == b"list" and sync_redis.lrange(queue.key, 0, -1) == [job.id.encode()]
    assert sync_redis.lpos(queue.key, job.id) == 0
    assert queue.key.encode() in sync_redis.smembers(Queue.redis_queues_keys)  # type: ignore[operator]
    assert sync_redis.hmget(job.key, ["status", "origin"]) == [b"queued", name.encode()]


def test_a_scheduled_job_enqueue_sends_writes_is_the_one_rq_writes(settings: Settings, sync_redis: SyncRedis) -> None:
    """enqueue_sends writes scheduled jobs without RQ's per-job construction (worker/queues.py,
    _ScheduledJobs): what it leaves in Redis must be exactly what `Queue.schedule_job` leaves, field for
    field (the creation time aside), so RQ's scheduler, worker and our recovery read either alike."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    at = datetime(2030, 1, 1, 12, 0, 5, tzinfo=UTC)
    ours = queues.enqueue_sends(settings, sync_redis, [queues.Send(777, at, tag="ours", attempt=3, queue_name=name)],
                                now=at - timedelta(minutes=1))[0]
    assert ours is not None
    queue = Queue(name, connection=sync_redis)
    assert queue.key.encode() in sync_redis.smembers(Queue.redis_queues_keys)  # type: ignore[operator]
    theirs = queue.create_job(queues.SEND_BATCH, args=(777, 3), status=JobStatus.SCHEDULED, job_id="send-777-rq",
                              timeout=queues.JOB_TIMEOUT_S, result_ttl=queues.RESULT_TTL_S,
                              failure_ttl=queues._FAILURE_TTL_S)
    queue.schedule_job(theirs, at)
    written: list[dict[bytes, bytes]] = [sync_redis.hgetall(Job.key_for(j)) for j in (ours, theirs.id)]  # type: ignore[misc]
    assert written[0].pop(b"created_at") and written[1].pop(b"created_at")
    assert written[0] == written[1] and written[0][b"status"] == b"scheduled"
    registry = ScheduledJobRegistry(queue=queue)
    assert registry.get_scheduled_time(ours) == registry.get_scheduled_time(theirs.id) == at
    job = Job.fetch(ours, connection=sync_redis)
    assert (job.func_name, job.args, job.origin) == (queues.SEND_BATCH, (777, 3), name)
    assert job.timeout == queues.JOB_TIMEOUT_S


def test_the_scheduled_registry_keeps_whole_seconds_truncated(sync_redis: SyncRedis) -> None:
    """A sorted set of job ids scored by the unix time in whole seconds, rounded down; enqueue_sends
    rounds up so that a job never starts early (worker/queues.py)."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=sync_redis)
    at = datetime(2030, 1, 1, 12, 0, 0, 700_000, tzinfo=UTC)
    job = queue.create_job("builtins.print", args=(1,), status=JobStatus.SCHEDULED)
    queue.schedule_job(job, at)
    registry = ScheduledJobRegistry(queue=queue)
    assert registry.key == ScheduledJobRegistry.key_template.format(name)
    assert sync_redis.type(registry.key) == b"zset"
    assert sync_redis.zscore(registry.key, job.id) == int(at.timestamp())
    assert sync_redis.hget(job.key, "status") == b"scheduled"


def test_jobs_the_hand_over_moves_are_rqs_own_there(settings: Settings, sync_redis: SyncRedis) -> None:
    """The hand-over's Lua moves ids between RQ's lists and scheduled registries and rewrites `origin`;
    RQ's own calls then find the jobs where they were moved: dequeued from the shared queue, and the
    scheduled one enqueued there by the scheduler when due."""
    owner = f"upgrade-{uuid.uuid4().hex[:8]}"
    mine = Queue(own_queues.personal_queue_name(settings, owner), connection=sync_redis)
    shared = queues.broadcast_queue(settings, sync_redis)
    shared.empty()
    queued = mine.enqueue("builtins.print", 1)
    due = mine.create_job("builtins.print", args=(2,), status=JobStatus.SCHEDULED)
    mine.schedule_job(due, datetime.now(UTC) - timedelta(seconds=5))
    assert own_queues.hand_over(settings, sync_redis, mine.name) == (1, 1)
    assert Job.fetch(queued.id, connection=sync_redis).origin == shared.name
    found = Queue.dequeue_any([shared], None, connection=sync_redis)
    assert found is not None and found[0].id == queued.id and found[1].name == shared.name
    scheduler = RQScheduler([shared], connection=sync_redis)
    scheduler.acquire_locks()
    try:
        assert shared.name in scheduler.acquired_locks
        scheduler.enqueue_scheduled_jobs()
    finally:
        scheduler.release_locks()
    assert shared.job_ids == [due.id] and Job.fetch(due.id, connection=sync_redis).origin == shared.name


def test_the_scheduler_lock_lives_interval_plus_60_s(sync_redis: SyncRedis) -> None:
    """Why the poll cannot be made faster through `interval` (worker/scheduler.py): the lock's TTL is
    `interval + 60` whole seconds."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    scheduler = RQScheduler([name], connection=sync_redis)
    scheduler.acquire_locks()
    try:
        assert 55 < sync_redis.ttl(RQScheduler.get_locking_key(name)) <= scheduler.interval + 60  # type: ignore[operator]
    finally:
        scheduler.release_locks()


def test_a_dead_scheduler_thread_is_restarted_through_acquire_locks(sync_redis: SyncRedis) -> None:
    """RQ's maintenance restarts a scheduler whose `_process` is not alive with
    `acquire_locks(auto_start=True)`, which calls `start()`: ours starts a thread, never a fork."""
    name = f"upgrade-{uuid.uuid4().hex[:8]}"
    scheduler = FastPollingScheduler([name], connection=sync_redis)
    dead = SchedulerThread(target=lambda: None)
    dead.start()
    dead.join()
    scheduler._process = dead  # type: ignore[assignment]
    scheduler.acquire_locks(auto_start=True)
    try:
        started = scheduler._process
        assert isinstance(started, SchedulerThread) and started is not dead and started.is_alive()
        assert started.pid is None  # RQ's stop_scheduler would signal a pid
    finally:
        scheduler.request_stop()
        if isinstance(scheduler._process, threading.Thread):
            scheduler._process.join(5)


def test_the_registries_a_gone_workers_queue_is_retired_by(sync_redis: SyncRedis) -> None:
    """The registries worker/process.py counts before it retires a gone worker's queue, by their names."""
    queue = Queue(f"upgrade-{uuid.uuid4().hex[:8]}", connection=sync_redis)
    for registry in (StartedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry, FailedJobRegistry,
                     FinishedJobRegistry, CanceledJobRegistry):
        assert registry(queue=queue).count == 0
    assert queue.intermediate_queue.get_job_ids() == []


# ---- the names jobs already in Redis carry ---------------------------------------------------------

# The job functions a running deployment of the previous release enqueued, by name. A job body may move
# only if its old name keeps importing (a thin alias) until those jobs are gone.
PREVIOUS_RELEASE = ("jobs.send_batch.send_batch", "jobs.announce.run_announcement")


@pytest.mark.parametrize("name", PREVIOUS_RELEASE)
def test_the_previous_releases_job_names_still_run_on_the_job_loop(name: str) -> None:
    function = import_attribute(name)
    assert callable(function) and callable(getattr(function, "loop_body", None)), name
    assert name in queues.JOB_FUNCTIONS


def test_a_queued_job_of_the_previous_release_is_run(sync_redis: SyncRedis) -> None:
    """A job hash written by the previous release (its function by name) resolves to the loop body the
    worker starts as a task."""
    queue = Queue(f"upgrade-{uuid.uuid4().hex[:8]}", connection=sync_redis)
    job = queue.enqueue("jobs.announce.run_announcement", 1)
    fetched = Job.fetch(job.id, connection=sync_redis)
    assert fetched.func_name == "jobs.announce.run_announcement" and fetched.args == (1,)
    assert callable(fetched.func.loop_body)
