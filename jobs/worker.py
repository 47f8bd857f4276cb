"""The worker process: RQ on the broadcast and announcement queues, with the scheduler so
`enqueue_at` jobs run, and many jobs at once on one event loop (jobs/loop_worker.py, docs/worker.md).

Why no fork per job: a forked horse that imports the job module pays for it on every job (~150-250 ms
measured for psycopg, redis, httpx, pydantic) and opens new PostgreSQL, Redis, Bot API and Telegram
connections every time. Here the job modules are imported once at start and the job loop keeps its
pool, clients and connected accounts across jobs, so a job costs only its own queries and sends. The
price of not forking is that a crash that corrupts the process takes the worker down; the jobs' state
is in PostgreSQL with leases, so a restarted worker (the platform restarts it) simply carries on.

Shutdown: the first SIGTERM/SIGINT is a warm shutdown (no new jobs; running ones finish, then exit);
a second one exits at once, and deliveries left in flight go back to pending when their lease expires
(the tick's recovery).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from typing import Any

from rq import Queue
from rq.job import Job
from rq.scheduler import RQScheduler

from core.logs import bind
from core.settings import Settings
from jobs import queues
from jobs.context import close_runtime, runtime, use_settings
from jobs.loop_worker import LoopWorker

log = logging.getLogger(__name__)

# An announcement paces itself at ~25 messages/s for hours; one at a time per worker process, in a slot
# of its own so it never takes a broadcast's place.
ANNOUNCE_SLOTS = 1

# RQ's scheduler moves due `enqueue_at` jobs to their queue once a second, and its registry keeps
# whole seconds (we round up so nothing starts early): together up to ~2 s of start lag. Polling five
# times a second takes most of that away for a few cheap Redis calls.
POLL_EVERY_S = 0.2


class FastPollingScheduler(RQScheduler):
    """RQ 3.0's `RQScheduler.work` loop with the due-job poll every POLL_EVERY_S instead of every
    `interval`. RQ 3.0 offers no faster poll: `interval` must stay a whole number of seconds, because
    the scheduler's lock and its metadata key expire after `interval + 60`, handed to Redis as EX/EXPIRE
    seconds (a fraction is refused), and `Worker._start_scheduler` takes neither an interval nor a
    scheduler class. So the interval stays 1 s for the heartbeat and locks, as in RQ, and only
    `enqueue_scheduled_jobs` runs more often."""

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        next_heartbeat = 0.0
        while not self._stop_requested:
            if time.monotonic() >= next_heartbeat:
                if self.should_reacquire_locks:
                    self.acquire_locks()
                self.heartbeat()
                next_heartbeat = time.monotonic() + self.interval
            self.enqueue_scheduled_jobs()
            time.sleep(POLL_EVERY_S)
        self.stop()


class BroadcastWorker(LoopWorker):
    """`LoopWorker` with the fast-polling scheduler (RQ has no option to choose the class), whose jobs
    log with their job id."""

    _context_opened = False

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
    broadcast = queues.broadcast_queue(settings, connection)
    announce = Queue(queues.announce_queue_name(settings), connection=connection)
    # RQ restarts a dead scheduler process (and takes over a dead worker's scheduler lock) only in its
    # maintenance pass, every 10 minutes by default: far too long for jobs that must start on time.
    worker = BroadcastWorker(
        [broadcast, announce], connection=connection, name=name, maintenance_interval=30,
        limits={broadcast.name: settings.worker_concurrency, announce.name: ANNOUNCE_SLOTS},
        runtime=runtime(),
    )
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        close_runtime()
        connection.close()
