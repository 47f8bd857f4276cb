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

from rq import Queue, SimpleWorker

from core.settings import Settings
from jobs import queues
from jobs.context import close_runtime, use_settings

log = logging.getLogger(__name__)


def announce_queue_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}-announce"


def run_worker(settings: Settings, *, burst: bool = False, name: str | None = None) -> bool:
    # Preloaded once: jobs never pay for these imports.
    importlib.import_module("jobs.send_batch")
    with contextlib.suppress(ImportError):
        importlib.import_module("jobs.announce")

    use_settings(settings)
    connection = queues.sync_redis(settings)
    worker_queues = [
        queues.broadcast_queue(settings, connection),
        Queue(announce_queue_name(settings), connection=connection),
    ]
    worker = SimpleWorker(worker_queues, connection=connection, name=name)
    try:
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level=settings.log_level))
    finally:
        close_runtime()
        connection.close()
