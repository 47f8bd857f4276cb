"""The worker's scheduler: a thread of the worker process (never a fork of it), restarted by the
maintenance pass when it dies, and riding out a Redis outage without ending."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from worker.process import BroadcastWorker
from worker.scheduler import SchedulerThread


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _children() -> set[int]:
    """This process's child processes (a forked scheduler would be one)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry.name))
    return found


def test_the_scheduler_is_a_thread_restarted_by_maintenance_when_it_ends(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    queue = Queue("tgcast-broadcast", connection=connection)
    worker = BroadcastWorker([queue], connection=connection)
    children = _children()
    worker._start_scheduler()
    assert worker.scheduler is not None
    first = worker.scheduler._process
    try:
        assert isinstance(first, SchedulerThread) and first.is_alive()
        assert _children() == children  # nothing forked
        # the thread ends (as if it had died); its lock would lapse in a minute: dropping it stands for that
        worker.scheduler.request_stop()
        first.join(5)
        assert not first.is_alive()
        for key in connection.scan_iter("rq:scheduler-lock:*"):
            connection.delete(key)
        worker.last_cleaned_at = datetime.now(UTC) - timedelta(hours=1)
        worker.run_maintenance_tasks()
        second = worker.scheduler._process
        assert isinstance(second, SchedulerThread) and second is not first and second.is_alive()
        assert _children() == children

        queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=1), "builtins.print", "x", job_id="probe")
        registry = ScheduledJobRegistry(queue=queue)
        assert _wait(lambda: registry.count == 0 and queue.count == 1), "the new scheduler did not move the job"
    finally:
        worker.stop_scheduler()
        connection.flushdb()
        connection.close()
    assert not worker.scheduler._process.is_alive()  # stopped by asking, joined


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Redis:
    """A private redis-server that the test can take away and bring back on the same port."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("needs a redis-server binary (Debian: redis-server)")
        self.binary, self.tmp, self.port = binary, tmp, _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert _wait(self._answers), "private redis-server did not start"

    def _answers(self) -> bool:
        try:
            with Redis.from_url(self.url, socket_connect_timeout=0.5) as r:
                return bool(r.ping())
        except Exception:
            return False

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[_Redis]:
    server = _Redis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


def test_the_scheduler_rides_out_a_redis_outage(private_redis: _Redis) -> None:
    connection = Redis.from_url(private_redis.url, socket_timeout=1, socket_connect_timeout=1)
    queue = Queue("tgcast-broadcast", connection=connection)
    worker = BroadcastWorker([queue], connection=connection)
    worker._start_scheduler()
    assert worker.scheduler is not None
    thread = worker.scheduler._process
    assert isinstance(thread, threading.Thread)
    try:
        private_redis.stop()  # Redis gone, not flushed: every call of the loop fails for a while
        time.sleep(3)
        assert thread.is_alive(), "the scheduler ended in the outage"
        private_redis.start()  # back, empty (it kept nothing): the loop takes its lock again
        queue.enqueue_at(datetime.now(UTC) + timedelta(seconds=1), "builtins.print", "y", job_id="after")
        registry = ScheduledJobRegistry(queue=queue)
        assert _wait(lambda: registry.count == 0 and queue.count == 1, timeout=20), "no scheduling after the outage"
        assert worker.scheduler._process is thread  # the same thread: it never died
    finally:
        worker.stop_scheduler()
        connection.close()
