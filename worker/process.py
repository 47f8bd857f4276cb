"""The worker process: RQ on the broadcast and announcement queues, with the scheduler (a thread) so
`enqueue_at` jobs run, and many jobs at once on one event loop (worker/loop_worker.py, docs/worker.md).

Why no fork per job: a forked horse that imports the job module pays for it on every job (~150-250 ms
measured for psycopg, redis, httpx, pydantic) and opens new PostgreSQL, Redis, Bot API and Telegram
connections every time. Here the job modules are imported once at start and the job loop keeps its
pool, clients and connected accounts across jobs, so a job costs only its own queries and sends. The
price of not forking is that a crash that corrupts the process takes the worker down; the jobs' state
is in PostgreSQL with leases, so a restarted worker (the platform restarts it) simply carries on.

Routing (worker/own_queues.py): the process has a broadcast queue of its own, named after its connection
claims' owner and listened to before the shared one in the same slots, so an account's batches come
to the process that holds its connection. The worker keeps that queue's liveness key, hands over the
queues of dead workers to the shared queue, and hands its own over when it stops.

Shutdown: the first SIGTERM/SIGINT is a warm shutdown (no new jobs; running ones finish, then exit),
bounded by WORKER_SHUTDOWN_S: platforms SIGKILL a few seconds after that, so the batches stop sending
and give the rest back in time, and the queue is handed over before the exit (worker/loop_worker.py).
A second signal exits at once, and deliveries left in flight go back to pending when their lease
expires (the tick's recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from typing import Any

from rq import Queue
from rq.job import Job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
    clean_registries,
)

from core.logs import bind
from core.schedule import batch_overdue_s
from core.settings import Settings
from userbot import claims
from worker import own_queues, queues
from worker.context import close_runtime, runtime, use_settings
from worker.loop_worker import LoopWorker
from worker.scheduler import FastPollingScheduler

log = logging.getLogger(__name__)

# An announcement paces itself at ~25 messages/s for hours; one at a time per worker process, in a slot
# of its own so it never takes a broadcast's place.
ANNOUNCE_SLOTS = 1

# A dead worker's queue, once emptied of waiting jobs, is looked at this often until its registries
# (started, failed, finished...) have nothing left to show, then retired from RQ's list of queues.
RETIRE_EVERY_S = 60

# How long a stopping worker waits for its scheduler thread (one poll, or one Redis timeout).
SCHEDULER_JOIN_S = 5.0


class BroadcastWorker(LoopWorker):
    """`LoopWorker` with the fast-polling scheduler (RQ has no option to choose the class), whose jobs
    log with their job id. With `settings` and `owner` (its connection claims' owner; its own queue,
    `own_queues.personal_queue_name`, must be among `queues`), it keeps that queue's liveness key and
    hands over its own and dead workers' queues (worker/own_queues.py)."""

    _context_opened = False

    def __init__(self, queues: Any, *, settings: Settings | None = None, owner: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        self.settings = settings
        self.owner = owner
        self.home = own_queues.personal_queue_name(settings, owner) if settings and owner else None
        self._serving = False
        self._next_home_beat = self._next_handover = 0.0
        self._stall_logged = False

    # ---- the worker's own queue, and the dead ones ---------------------------------------------------

    def upkeep(self) -> None:
        if self.settings is None or self.owner is None:
            return
        clock = time.monotonic()
        # Liveness means the job loop answers, not only this thread: a stalled loop serves none of the
        # jobs routed here (and keeps none of its connection claims alive), so its key is left to
        # lapse and the others hand the queue over.
        answering = self.runtime.answers(own_queues.LOOP_STALL_S)
        if clock >= self._next_home_beat:
            if answering:
                own_queues.announce_home(self.settings, self.connection, self.owner)
                self._serving = True
                self._next_home_beat = clock + own_queues.HOME_BEAT_S
            elif not self._stall_logged:
                log.warning("Worker %s: the job loop has not answered for %s s; its queue is left to lapse",
                            self.name, own_queues.LOOP_STALL_S)
            self._stall_logged = not answering
        if clock >= self._next_handover:
            self._next_handover = clock + own_queues.HANDOVER_EVERY_S
            for name in own_queues.dead_homes(self.settings, self.connection, own=self.home):
                self._take_over(name)

    def _take_over(self, name: str) -> None:
        assert self.settings is not None
        queued, scheduled = own_queues.hand_over(self.settings, self.connection, name)
        if queued or scheduled:
            log.info("Worker %s: %s is gone: %s queued and %s scheduled jobs handed to the shared queue",
                     self.name, name, queued, scheduled)
        if not self.connection.set(f"{self.settings.redis_prefix}home-retire:{name}", 1, nx=True,
                                   ex=RETIRE_EVERY_S):
            return
        # What RQ's maintenance does for the queues a worker listens to, which nobody does for a dead
        # worker's: its abandoned started jobs go to the failed registry, a job stuck between dequeue and
        # start is failed after a minute (the tick's recovery then carries its cycle on), expired entries
        # leave. Once nothing is left to show, the queue leaves RQ's list (and rq-dashboard's).
        dead = Queue(name, connection=self.connection, job_class=self.job_class, serializer=self.serializer)
        clean_registries(dead, self._exc_handlers)
        dead.intermediate_queue.cleanup(self, dead)
        registries = (StartedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry, FailedJobRegistry,
                      FinishedJobRegistry, CanceledJobRegistry)
        left = dead.count + len(dead.intermediate_queue.get_job_ids()) + sum(
            registry(queue=dead).count for registry in registries)
        if not left:
            dead.delete(delete_jobs=False)
            log.info("Worker %s: retired the queue of a gone worker, %s", self.name, name)

    def stopped_taking(self) -> None:
        # Nothing more is routed here, and live workers hand over what waits here now; the jobs still
        # running enqueue their continuations here, handed over by the others or by `hand_over_home`.
        if self._serving and self.settings is not None and self.owner is not None:
            with contextlib.suppress(Exception):
                own_queues.withdraw_home(self.settings, self.connection, self.owner)

    def drained(self) -> None:
        self.hand_over_home()

    def hand_over_home(self) -> None:
        """Move what waits in this worker's own queue to the shared one (at the end: the last batches'
        continuations, and anything routed here before the routing saw this worker leave)."""
        if self.settings is None or self.home is None:
            return
        try:
            queued, scheduled = own_queues.hand_over(self.settings, self.connection, self.home)
        except Exception:  # Redis gone: the live workers hand it over once they see this one's key lapse
            log.exception("Worker %s: handing over its queue failed", self.name)
            return
        if queued or scheduled:
            log.info("Worker %s: handed %s queued and %s scheduled jobs to the shared queue", self.name,
                     queued, scheduled)

    def _start(self, job: Job, q: Queue) -> None:
        if not self._context_opened:
            # The process's shared context (pool, clients, the sender cache's upkeep) opens in the first
            # task on the job loop; opened by a task of its own, its long-lived tasks carry no job's ids.
            self.runtime.submit(lambda ctx: asyncio.sleep(0))
            self._context_opened = True
        # The job's task inherits the ids bound here: asyncio copies the submitting thread's context
        # into it (worker/context.py, `ProcessRuntime.submit`), and the job adds its own (its cycle).
        with bind(job_id=job.id):
            super()._start(job, q)

    def stop_scheduler(self) -> None:
        """The scheduler is a thread here (`SchedulerThread`): asked to stop, not signalled."""
        if self.scheduler is None:
            return
        self.scheduler.request_stop()
        process = self.scheduler._process
        if isinstance(process, threading.Thread) and process is not threading.current_thread():
            left = self.shutdown_left()
            process.join(SCHEDULER_JOIN_S if left is None else max(0.0, min(SCHEDULER_JOIN_S, left - 1)))

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO", *args: Any,
                         **kwargs: Any) -> None:
        self.scheduler = FastPollingScheduler(
            self.queues, connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if burst:
            try:
                self.scheduler.register_birth()
                self.scheduler.enqueue_scheduled_jobs()
            finally:
                self.scheduler.release_locks()
                self.scheduler.register_death()
        else:
            self.scheduler.start()


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    # The job bodies' modules, found by the names their jobs are enqueued under (this package never
    # imports them), are preloaded once: jobs never pay for these imports.
    for function in queues.JOB_FUNCTIONS:
        importlib.import_module(function.rpartition(".")[0])

    use_settings(settings)
    connection = queues.sync_redis(settings)
    # The claims owner is chosen here, before the job loop opens the context (and before the scheduler
    # starts, which must serve this process's own queue), so that the queue and the claims agree.
    owner = claims.new_owner()
    claims.declared_owner.set(owner)
    home = Queue(own_queues.personal_queue_name(settings, owner), connection=connection)
    broadcast = queues.broadcast_queue(settings, connection)
    announce = Queue(queues.announce_queue_name(settings), connection=connection)
    # RQ restarts a dead scheduler process (and takes over a dead worker's scheduler lock) only in its
    # maintenance pass, every 10 minutes by default: far too long for jobs that must start on time.
    worker = BroadcastWorker(
        [home, broadcast, announce], connection=connection, name=name, maintenance_interval=30,
        limits={broadcast.name: settings.worker_concurrency, announce.name: ANNOUNCE_SLOTS},
        pools={home.name: broadcast.name}, stuck_after={broadcast.name: batch_overdue_s(settings.lease_s)},
        runtime=runtime(), settings=settings, owner=owner,
        shutdown_s=settings.worker_shutdown_s, request_timeout_s=settings.request_timeout_s,
    )
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        # The claims go (nothing is routed here any more), within what is left of a warm shutdown's
        # time, less a moment for the last hand-over: connections not closed by then end with the
        # process, their claims lapse.
        left = worker.shutdown_left()
        close_runtime(60 if left is None else max(0.5, left - 0.5))
        worker.hand_over_home()
        connection.close()
