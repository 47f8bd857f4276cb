"""The worker process: RQ on the broadcast (and announcement) queues, with the scheduler so
`enqueue_at` jobs run.

Why a non-forking `SimpleWorker`: RQ's default `Worker` forks a fresh work horse per job, and a
horse that imports the job module pays for it on every job, and opens new PostgreSQL, Redis and
Bot API connections every time. Measured here: importing `jobs.send_batch` in a fresh interpreter
costs ~150-250 ms (psycopg, redis, httpx, pydantic), plus ~20-50 ms to open the connections; in this
process the job module is imported once at start and `jobs.context` keeps one event loop with its
pool and clients across jobs, so a job costs only its own queries and sends. The price of not
forking is that a job crash that corrupts the process takes the worker down; the job's state is in
PostgreSQL with leases, so a restarted worker (the platform restarts it) simply carries on.

Shutdown: RQ turns the first SIGTERM/SIGINT into a warm shutdown: the current job finishes, then
the worker exits. Deliveries still in flight if the process is killed harder go back to pending when
their lease expires (the tick's recovery).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time

from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler

from core.settings import Settings
from jobs import queues
from jobs.context import close_runtime, use_settings

log = logging.getLogger(__name__)


# RQ's scheduler moves due `enqueue_at` jobs to their queue once a second, and its registry keeps
# whole seconds (we round up so nothing starts early): together up to ~2 s of start lag. Polling five
# times a second takes most of that away for a few cheap Redis calls. RQ derives its lock TTLs from
# the (integer) interval, so the interval stays 1 s and only the polling loop is faster.
POLL_EVERY_S = 0.2


class FastPollingScheduler(RQScheduler):
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


class BroadcastWorker(SimpleWorker):
    """`SimpleWorker` with the fast-polling scheduler (RQ has no option to choose the class)."""

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO", *args: object,
                         **kwargs: object) -> None:
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
    worker_queues = [
        queues.broadcast_queue(settings, connection),
        Queue(queues.announce_queue_name(settings), connection=connection),
    ]
    # RQ restarts a dead scheduler process (and takes over a dead worker's scheduler lock) only in its
    # maintenance pass, every 10 minutes by default: far too long for jobs that must start on time.
    worker = BroadcastWorker(worker_queues, connection=connection, name=name, maintenance_interval=30)
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        close_runtime()
        connection.close()
