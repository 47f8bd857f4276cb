"""The worker's scheduler process is restarted by the maintenance pass when it dies."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from jobs.worker import BroadcastWorker


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_dead_scheduler_process_is_restarted_and_moves_due_jobs(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("tgcast-broadcast", connection=connection)
    worker = BroadcastWorker([queue], connection=connection)
    worker._start_scheduler()
    assert worker.scheduler is not None
    first = worker.scheduler._process
    try:
        assert first is not None and first.is_alive()
        os.kill(first.pid, signal.SIGKILL)
        first.join(5)
        # The killed scheduler's lock would expire in a minute; dropping it stands for that wait.
        for key in connection.scan_iter("rq:scheduler-lock:*"):
            connection.delete(key)
        worker.last_cleaned_at = datetime.now(UTC) - timedelta(hours=1)
        worker.run_maintenance_tasks()
        second = worker.scheduler._process
        assert second is not None and second is not first and second.is_alive()

        queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=1), "builtins.print", "x", job_id="probe")
        registry = ScheduledJobRegistry(queue=queue)
        assert _wait(lambda: registry.count == 0 and queue.count == 1), "the new scheduler did not move the job"
    finally:
        worker.stop_scheduler()
        connection.flushdb()
        connection.close()
