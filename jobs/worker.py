"""The worker process: RQ on the broadcast and announcement queues, with the scheduler (a thread) so
`enqueue_at` jobs run, and many jobs at once on one event loop (jobs/loop_worker.py, docs/worker.md).

Why no fork per job: a forked horse that imports the job module pays for it on every job (~150-250 ms
measured for psycopg, redis, httpx, pydantic) and opens new PostgreSQL, Redis, Bot API and Telegram
connections every time. Here the job modules are imported once at start and the job loop keeps its
pool, clients and connected accounts across jobs, so a job costs only its own queries and sends. The
price of not forking is that a crash that corrupts the process takes the worker down; the jobs' state
is in PostgreSQL with leases, so a restarted worker (the platform restarts it) simply carries on.

Routing (jobs/routing.py): the process has a broadcast queue of its own, named after its connection
claims' owner and listened to before the shared one in the same slots, so an account's batches come
to the process that holds its connection. The worker keeps that queue's liveness key, hands over the
queues of dead workers to the shared queue, and hands its own over when it stops.

Shutdown: the first SIGTERM/SIGINT is a warm shutdown (no new jobs; running ones finish, then exit),
bounded by WORKER_SHUTDOWN_S: platforms SIGKILL a few seconds after that, so the batches stop sending
and give the rest back in time, and the queue is handed over before the exit (jobs/loop_worker.py).
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
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
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
from rq.scheduler import RQScheduler

from core.logs import bind
from core.settings import Settings
from jobs import queues, routing
from jobs.context import close_runtime, runtime, use_settings
from jobs.loop_worker import LoopWorker
from userbot import claims

log = logging.getLogger(__name__)

# An announcement paces itself at ~25 messages/s for hours; one at a time per worker process, in a slot
# of its own so it never takes a broadcast's place.
ANNOUNCE_SLOTS = 1

# RQ's scheduler moves due `enqueue_at` jobs to their queue once a second, and its registry keeps
# whole seconds (we round up so nothing starts early): together up to ~2 s of start lag. Polling five
# times a second takes most of that away for a few cheap Redis calls.
POLL_EVERY_S = 0.2

# A dead worker's queue, once emptied of waiting jobs, is looked at this often until its registries
# (started, failed, finished...) have nothing left to show, then retired from RQ's list of queues.
RETIRE_EVERY_S = 60

# How often a scheduler tries for the queue locks it lacks (RQ: 120 s). A dead holder's lock expires 61 s
# after its last heartbeat; this bounds the wait after that.
REACQUIRE_EVERY_S = 10

# While Redis does not answer, the scheduler loop tries again after a pause doubling up to this.
SCHEDULER_BACKOFF_MAX_S = 5.0
# How long a stopping worker waits for its scheduler thread (one poll, or one Redis timeout).
SCHEDULER_JOIN_S = 5.0


class SchedulerThread(threading.Thread):
    """The scheduler's loop in a thread of the worker process, where RQ forks a process for it.

    Forking this process is unsafe: it runs the job loop's thread (asyncio, psycopg, Telethon), and a
    fork copies that thread's locks in whatever state they are (a lock held at the instant of the fork
    is held forever in the child: the continuations it should move never become due) and every open
    socket (the child keeps "closed" Telegram connections alive). RQ's worker looks for the scheduler in
    `scheduler._process` (`is_alive()` to restart a dead one, `pid` to signal it on stop): a thread has
    the first and no pid, so RQ starts a new thread instead of a fork and never signals one."""

    pid = None


class FastPollingScheduler(RQScheduler):
    """RQ 3.0's `RQScheduler.work` loop with the due-job poll every POLL_EVERY_S instead of every
    `interval`. RQ 3.0 offers no faster poll: `interval` must stay a whole number of seconds, because
    the scheduler's lock and its metadata key expire after `interval + 60`, handed to Redis as EX/EXPIRE
    seconds (a fraction is refused), and `Worker._start_scheduler` takes neither an interval nor a
    scheduler class. So the interval stays 1 s for the heartbeat and locks, as in RQ, and only
    `enqueue_scheduled_jobs` runs more often."""

    @property
    def should_reacquire_locks(self) -> bool:
        # Every worker's scheduler runs now (it always holds its own queue's lock), so RQ's retry of the
        # locks it lacks, every 2 minutes, is what moves the shared queue's lock on once its holder died.
        if set(self._queue_names) == set(self.acquired_locks):
            return False
        acquired = self.lock_acquisition_time
        return acquired is None or (datetime.now() - acquired).total_seconds() > REACQUIRE_EVERY_S

    def start(self) -> SchedulerThread:
        self._status = self.Status.STARTED
        self._stop_requested = False
        thread = SchedulerThread(target=self.work, name="rq-scheduler", daemon=True)
        self._process = thread  # type: ignore[assignment]
        thread.start()
        return thread

    def _install_signal_handlers(self) -> None:
        """Signals belong to the worker's main thread, which stops the scheduler (`request_stop`)."""

    def work(self) -> None:
        """RQ's loop, riding out Redis errors: an outage pauses the scheduling (with a growing pause
        between tries) and never ends the thread. Locks that lapsed meanwhile are taken again by the
        heartbeat, or by another worker's scheduler, whichever comes first."""
        born = False
        next_heartbeat = 0.0
        backoff = 0.0
        while not self._stop_requested:
            try:
                if not born:
                    self.register_birth()
                    born = True
                if time.monotonic() >= next_heartbeat:
                    if self.should_reacquire_locks:
                        self.acquire_locks()
                    self.heartbeat()
                    next_heartbeat = time.monotonic() + self.interval
                self.enqueue_scheduled_jobs()
                backoff = 0.0
            except (RedisError, OSError) as exc:
                backoff = min(SCHEDULER_BACKOFF_MAX_S, max(POLL_EVERY_S, backoff * 2))
                self.log.warning("Scheduler: Redis does not answer (%s); trying again in %.1f s",
                                 type(exc).__name__, backoff)
                self._pause(backoff)
                continue
            self._pause(POLL_EVERY_S)
        with contextlib.suppress(RedisError, OSError):  # the locks lapse on their own if Redis is gone
            self.stop()

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_requested and time.monotonic() < deadline:
            time.sleep(min(POLL_EVERY_S, deadline - time.monotonic()))


class BroadcastWorker(LoopWorker):
    """`LoopWorker` with the fast-polling scheduler (RQ has no option to choose the class), whose jobs
    log with their job id. With `settings` and `owner` (its connection claims' owner; its own queue,
    `routing.personal_queue_name`, must be among `queues`), it keeps that queue's liveness key and
    hands over its own and dead workers' queues (jobs/routing.py)."""

    _context_opened = False

    def __init__(self, queues: Any, *, settings: Settings | None = None, owner: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(queues, **kwargs)
        self.settings = settings
        self.owner = owner
        self.home = routing.personal_queue_name(settings, owner) if settings and owner else None
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
        answering = self.runtime.answers(routing.LOOP_STALL_S)
        if clock >= self._next_home_beat:
            if answering:
                routing.announce_home(self.settings, self.connection, self.owner)
                self._serving = True
                self._next_home_beat = clock + routing.HOME_BEAT_S
            elif not self._stall_logged:
                log.warning("Worker %s: the job loop has not answered for %s s; its queue is left to lapse",
                            self.name, routing.LOOP_STALL_S)
            self._stall_logged = not answering
        if clock >= self._next_handover:
            self._next_handover = clock + routing.HANDOVER_EVERY_S
            for name in routing.dead_homes(self.settings, self.connection, own=self.home):
                self._take_over(name)

    def _take_over(self, name: str) -> None:
        assert self.settings is not None
        queued, scheduled = routing.hand_over(self.settings, self.connection, name)
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
                routing.withdraw_home(self.settings, self.connection, self.owner)

    def drained(self) -> None:
        self.hand_over_home()

    def hand_over_home(self) -> None:
        """Move what waits in this worker's own queue to the shared one (at the end: the last batches'
        continuations, and anything routed here before the routing saw this worker leave)."""
        if self.settings is None or self.home is None:
            return
        try:
            queued, scheduled = routing.hand_over(self.settings, self.connection, self.home)
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
        # into it (jobs/context.py, `ProcessRuntime.submit`), and the job adds its own (its cycle).
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
    # Preloaded once: jobs never pay for these imports.
    importlib.import_module("jobs.send_batch")
    with contextlib.suppress(ImportError):
        importlib.import_module("jobs.announce")

    use_settings(settings)
    connection = queues.sync_redis(settings)
    # The claims owner is chosen here, before the job loop opens the context (and before RQ forks the
    # scheduler, which must serve this process's own queue), so that the queue and the claims agree.
    owner = claims.new_owner()
    claims.declared_owner.set(owner)
    home = Queue(routing.personal_queue_name(settings, owner), connection=connection)
    broadcast = queues.broadcast_queue(settings, connection)
    announce = Queue(queues.announce_queue_name(settings), connection=connection)
    # RQ restarts a dead scheduler process (and takes over a dead worker's scheduler lock) only in its
    # maintenance pass, every 10 minutes by default: far too long for jobs that must start on time.
    worker = BroadcastWorker(
        [home, broadcast, announce], connection=connection, name=name, maintenance_interval=30,
        limits={broadcast.name: settings.worker_concurrency, announce.name: ANNOUNCE_SLOTS},
        pools={home.name: broadcast.name}, runtime=runtime(), settings=settings, owner=owner,
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
