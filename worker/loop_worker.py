"""An RQ worker that runs many jobs at once as asyncio tasks on the process's job loop.

A send batch spends almost all its time waiting: the 1-2 s pause between two sends of its account,
and Telegram's answer. Run one at a time per process, a box's capacity would be the number of
processes it could hold, at 0 % CPU each. Here the RQ side stays as RQ 3 does it — dequeue, one `Execution`
per job in the started registry and the worker's execution set, heartbeats, success and failure
bookkeeping, the failed registry, warm shutdown — and only the "perform" step differs: the job's
async body (`worker.context.loop_job`) becomes a task on the job loop, and this thread goes back to
the queue while slots are free. docs/worker.md explains the design and the alternatives rejected.

- Slots per queue: broadcasts get `WORKER_CONCURRENCY`, announcements a slot of their own, so a
  six-hour announcement never takes a broadcast's place and broadcasts never hold an announcement. A
  queue may count against another's slots (`pools`): the worker's own broadcast queue (worker/own_queues.py)
  and the shared one fill one pool, the own queue first, since the queues are listened to in order.
- A job's timeout cancels that job's task only (`asyncio.timeout`), never its neighbours; no SIGALRM.
- A job of a pool in `stuck_after` still running past that many seconds is reported once, with where it
  waits (a warning with its await chain): long before its timeout, an operator sees what it waits on.
- One account never runs two batches at once anywhere: that is the send batch's own account lock,
  not this class's business.
- Warm shutdown (first SIGTERM/SIGINT): stop taking jobs, let the running ones finish, exit, all within
  `shutdown_s` (WORKER_SHUTDOWN_S) when it is given: the batches stop sending and give the rest back
  in time (`ProcessRuntime.stop_sending`), the ones still running near the end are cancelled and put
  back on their queue. A second signal exits at once; what was in flight comes back through leases
  (docs/runtime.md, "Recovery").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue as threadqueue
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from core.schedule import shutdown_plan
from worker.context import JobContext, ProcessRuntime, WorkerStopping
from worker.context import runtime as current_runtime

log = logging.getLogger(__name__)

# How long the main thread blocks on an empty queue or on full slots before it looks around again
# (finished jobs, heartbeats, a stop request). BLPOP/BLMOVE take whole seconds.
WAIT_S = 1
HEARTBEAT_EVERY_S = 10.0
# After a stopping worker cancels its last jobs, how long it waits for their clean-up (giving their rows
# back) before it exits without them, at most.
CANCELLED_SETTLE_S = 2.0


@dataclass(slots=True)
class _Running:
    job: Job
    queue: Queue
    execution: Execution
    future: concurrent.futures.Future[Any]
    timeout: int
    since: float  # time.monotonic() at its start
    reported: bool = False  # reported as stuck (`stuck_after`)


class LoopWorker(SimpleWorker):
    """`SimpleWorker` (no fork: the job loop and its connections live in this process) that keeps up
    to `limits[queue name]` jobs of each queue running at once."""

    def __init__(self, queues: Sequence[Queue], *, limits: dict[str, int] | None = None,
                 pools: dict[str, str] | None = None, stuck_after: dict[str, float] | None = None,
                 runtime: ProcessRuntime | None = None, shutdown_s: float | None = None,
                 request_timeout_s: float = 20.0, **kwargs: Any) -> None:
        super().__init__(list(queues), **kwargs)
        # A warm shutdown's bound (None: running jobs are waited for however long they take).
        self.shutdown_s = shutdown_s
        self.request_timeout_s = request_timeout_s
        self._stopping_since: float | None = None
        self.limits = dict(limits or {})  # by pool; a queue not named runs one job at a time
        self.pools = dict(pools or {})  # queue name -> the pool (a queue name in `limits`) its jobs count in
        self.stuck_after = dict(stuck_after or {})  # by pool: seconds after which a running job is reported
        self.runtime = runtime or current_runtime()
        self._running: dict[str, _Running] = {}
        self._in_pool: Counter[str] = Counter()
        self._finished: threadqueue.SimpleQueue[str] = threadqueue.SimpleQueue()
        self._last_beat = 0.0

    # ---- the loop ---------------------------------------------------------------------------------

    def work(self, burst: bool = False, logging_level: str | None = None, *args: Any,
             with_scheduler: bool = False, **kwargs: Any) -> bool:
        self.bootstrap(logging_level or "INFO")
        if with_scheduler:
            self._start_scheduler(burst, logging_level)
        self._install_signal_handlers()
        started = 0
        backoff = 1.0
        try:
            while not self._stop_requested:
                try:
                    self.check_for_suspension(burst)
                    if self.should_run_maintenance_tasks:
                        self.run_maintenance_tasks()
                    self._finish_done()
                    self._beat()
                    self.upkeep()
                    if self._stop_requested:
                        break
                    took = self._take_ready()
                    started += took
                    backoff = 1.0
                    if took:
                        continue
                    if burst and not self._running:
                        log.info("Worker %s: done, quitting", self.name)
                        break
                    started += self._wait()
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                    # Running batches carry on (their own connections); only the bookkeeping waits.
                    log.error("Worker %s: Redis unreachable (%s), retrying in %.0f s", self.name,
                              type(exc).__name__, backoff)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
            self.stopped_taking()
            self._drain()
            self.drained()
        finally:
            self.teardown()
        return bool(started)

    # ---- hooks ------------------------------------------------------------------------------------

    def upkeep(self) -> None:
        """Called once per round of the main loop (at least every WAIT_S), before taking jobs."""

    def stopped_taking(self) -> None:
        """Called once the worker takes no more jobs (warm shutdown, or a burst run is done)."""

    def drained(self) -> None:
        """Called once the running jobs have ended, before the worker deregisters."""

    def _shutdown(self) -> None:
        """Warm shutdown from the signal handler: never raise or wait there (the loop may be in the
        middle of Redis bookkeeping); the loop sees the flag within a second and drains."""
        self._stop_requested = True
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
            if self.shutdown_s is not None:
                plan = shutdown_plan(self.shutdown_s, self.request_timeout_s)
                self.runtime.stop_sending(self._stopping_since + plan.send_s)
        self.set_shutdown_requested_date()
        log.info("Worker %s: warm shutdown: finishing %s running jobs%s (signal again for a cold one)",
                 self.name, len(self._running),
                 f" within {self.shutdown_s:g} s" if self.shutdown_s is not None else "")
        if self.scheduler:
            # Asked only: a scheduler in the middle of a Redis call would hold the signal handler.
            # The teardown waits for it, within what is left of the shutdown's time.
            self.scheduler.request_stop()

    def shutdown_left(self) -> float | None:
        """Seconds left of a warm shutdown's bound; None when there is none."""
        if self.shutdown_s is None or self._stopping_since is None:
            return None
        return self._stopping_since + self.shutdown_s - time.monotonic()

    def _drain(self) -> None:
        """Wait for the running jobs to end. Within a warm shutdown's bound, those still running at
        the plan's cancel time are cancelled (their own clean-up gives their rows back) and put back
        on their queue; those whose clean-up does not end soon after are left to the leases."""
        cancel_at = give_up_at = None
        if self.shutdown_s is not None and self._stopping_since is not None:
            cancel_at = self._stopping_since + shutdown_plan(self.shutdown_s, self.request_timeout_s).cancel_s
            give_up_at = cancel_at + min(CANCELLED_SETTLE_S, (self.shutdown_s - (cancel_at - self._stopping_since)) / 2)
        cancelled = False
        while self._running:
            wait = float(WAIT_S)
            if cancel_at is not None and give_up_at is not None:
                clock = time.monotonic()
                if not cancelled and clock >= cancel_at:
                    log.warning("Worker %s: %s jobs still running %.1f s into the shutdown: cancelled, put back",
                                self.name, len(self._running), clock - (self._stopping_since or clock))
                    self.runtime.cancel_all()
                    cancelled = True
                if clock >= give_up_at:
                    log.error("Worker %s: %s cancelled jobs did not end; exiting without them (their rows "
                              "come back with their leases)", self.name, len(self._running))
                    return
                wait = max(0.01, min(wait, (give_up_at if cancelled else cancel_at) - clock))
            try:
                job_id = self._finished.get(timeout=wait)
            except threadqueue.Empty:
                self._beat()
                continue
            self._finish(job_id)
            self._finish_done()

    # ---- taking jobs ------------------------------------------------------------------------------

    def _pool(self, q: Queue) -> str:
        return self.pools.get(q.name, q.name)

    def _free(self, q: Queue) -> int:
        pool = self._pool(q)
        return self.limits.get(pool, 1) - self._in_pool[pool]

    def _take_ready(self) -> int:
        """Start what is waiting, without blocking, while slots are free."""
        took = 0
        for q in self.queues:
            while self._free(q) > 0 and not self._stop_requested:
                found = self.queue_class.dequeue_any([q], None, connection=self.connection,
                                                     job_class=self.job_class, serializer=self.serializer)
                if found is None:
                    break
                self._start(*found)
                took += 1
        return took

    def _wait(self) -> int:
        """Block up to WAIT_S for a job on a queue with free slots, or for a running job to end."""
        open_queues = [q for q in self.queues if self._free(q) > 0]
        if not open_queues:
            try:
                self._finish(self._finished.get(timeout=WAIT_S))
            except threadqueue.Empty:
                pass
            return 0
        if self._running:
            self.set_state(WorkerStatus.BUSY)
        else:
            self.set_state(WorkerStatus.IDLE)
        try:
            found = self.queue_class.dequeue_any(open_queues, WAIT_S, connection=self.connection,
                                                 job_class=self.job_class, serializer=self.serializer)
        except DequeueTimeout:
            return 0
        if found is None:
            return 0
        self._start(*found)
        return 1

    def _start(self, job: Job, q: Queue) -> None:
        log.info("Worker %s: %s: %s", self.name, q.name, job.id)
        execution = self.prepare_execution(job)  # started registry + the worker's execution set; BUSY
        # Dequeued from one queue at a time, so LMOVE may have parked the id in the intermediate queue.
        self.prepare_job_execution(job, remove_from_intermediate_queue=True)
        job.started_at = now()
        timeout = int(job.timeout or self.queue_class.DEFAULT_TIMEOUT)
        try:
            body = getattr(job.func, "loop_body", None)
        except Exception:  # the function cannot be imported (a job of an older release, say): failed, not fatal
            self._finalize_failure(job, q, execution, sys.exc_info())
            return
        if body is not None:
            args, kwargs = job.args, job.kwargs

            async def task(ctx: JobContext) -> Any:
                # asyncio.timeout, not wait_for: in Python 3.11 wait_for swallows a cancel that meets the
                # body's end, and the warm shutdown relies on its cancel reaching the task.
                async with asyncio.timeout(timeout):
                    return await body(ctx, *args, **kwargs)
        else:  # a plain function (not ours): in a thread, so it cannot stall the loop
            async def task(ctx: JobContext) -> Any:
                async with asyncio.timeout(timeout):
                    return await asyncio.to_thread(job.perform)

        future = self.runtime.submit(task, name=job.id)
        self._running[job.id] = _Running(job, q, execution, future, timeout, time.monotonic())
        self._in_pool[self._pool(q)] += 1
        job_id = job.id
        future.add_done_callback(lambda _f: self._finished.put(job_id))

    # ---- finishing --------------------------------------------------------------------------------

    def _finish_done(self) -> None:
        while True:
            try:
                job_id = self._finished.get_nowait()
            except threadqueue.Empty:
                return
            self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        running = self._running.pop(job_id, None)
        if running is None:
            return
        self._in_pool[self._pool(running.queue)] -= 1
        job, q, execution, future = running.job, running.queue, running.execution, running.future
        if future.cancelled():  # only a stopping worker cancels a job's task (`_drain`)
            self._put_back(job, q, execution, WorkerStopping("cancelled by the worker's warm shutdown"))
            return
        error = future.exception()
        if isinstance(error, WorkerStopping):
            self._put_back(job, q, execution, error)
            return
        try:
            if error is None:
                self._finalize_success(job, q, execution, future.result())
            else:
                if isinstance(error, TimeoutError):
                    error = JobTimeoutException(f"Task exceeded maximum timeout value ({running.timeout} seconds)")
                self._finalize_failure(job, q, execution, (type(error), error, error.__traceback__))
        except redis.exceptions.RedisError:
            raise  # the loop retries the bookkeeping of later jobs; this one's lease covers it
        except Exception:  # a job hash gone with a Redis flush, say: the database still has the truth
            log.exception("Worker %s: bookkeeping of job %s failed", self.name, job_id)
        if not self._running:
            self.set_state(WorkerStatus.IDLE)

    def _put_back(self, job: Job, q: Queue, execution: Execution, error: WorkerStopping) -> None:
        """A job the warm shutdown interrupted goes back on its queue (a worker's own queue is handed
        over to the shared one next), to start again elsewhere: job bodies re-read their state."""
        try:
            self._finalize_failure(job, q, execution, (type(error), error, None))
            job.requeue(at_front=True)
            log.info("Worker %s: job %s put back on %s", self.name, job.id, job.origin)
        except redis.exceptions.RedisError:
            log.exception("Worker %s: putting job %s back failed (the tick's recovery carries its cycle on)",
                          self.name, job.id)
        if not self._running:
            self.set_state(WorkerStatus.IDLE)

    def _beat(self) -> None:
        """Worker, execution and job heartbeats in one pipeline, so RQ's maintenance never mistakes a
        long batch for an abandoned one."""
        if time.monotonic() - self._last_beat < HEARTBEAT_EVERY_S:
            return
        self._last_beat = time.monotonic()
        # One registry object per queue: `job.started_job_registry` builds a new one per call, and its
        # constructor's serializer check showed as ~40 % of this thread's time with hundreds of jobs.
        registries: dict[str, StartedJobRegistry] = {}
        with self.connection.pipeline() as pipeline:
            self.heartbeat(self.job_monitoring_interval + 60, pipeline=pipeline)
            for running in self._running.values():
                ttl = int(self.get_heartbeat_ttl(running.job))
                registry = registries.get(running.queue.name)
                if registry is None:
                    registry = registries[running.queue.name] = running.queue.started_job_registry
                running.execution.heartbeat(registry, ttl, pipeline=pipeline)
                running.job.heartbeat(now(), ttl, pipeline=pipeline, xx=True)
            pipeline.execute()
        self._report_stuck()

    def _report_stuck(self) -> None:
        """Once per job: a job running past its pool's `stuck_after` is logged with where it waits."""
        clock = time.monotonic()
        for running in self._running.values():
            limit = self.stuck_after.get(self._pool(running.queue))
            if limit is None or running.reported or clock - running.since < limit:
                continue
            running.reported = True
            self.runtime.log_where(running.job.id, f"Worker {self.name}: job {running.job.id} still running after "
                                   f"{clock - running.since:.0f} s (timeout {running.timeout} s)")
