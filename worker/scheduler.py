"""RQ's scheduler, run as a thread of the worker process and polling five times a second.

The scheduler moves `enqueue_at` jobs whose time has come from a queue's scheduled registry to the
queue; RQ runs it in a process forked from the worker, which this worker must never do (see
`SchedulerThread`). In tgcast "scheduler" means this and nothing else: what decides which broadcasts
are due is the tick (jobs/tick.py). docs/worker.md, "Routing", says why every worker runs one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime

from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

# RQ's scheduler moves due `enqueue_at` jobs to their queue once a second, and its registry keeps
# whole seconds (we round up so nothing starts early): together up to ~2 s of start lag. Polling five
# times a second takes most of that away for a few cheap Redis calls.
POLL_EVERY_S = 0.2

# How often a scheduler tries for the queue locks it lacks (RQ: 120 s). A dead holder's lock expires 61 s
# after its last heartbeat; this bounds the wait after that.
REACQUIRE_EVERY_S = 10

# While Redis does not answer, the scheduler loop tries again after a pause doubling up to this.
SCHEDULER_BACKOFF_MAX_S = 5.0


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
        # Every worker's scheduler runs (it always holds its own queue's lock), so RQ's retry of the locks
        # it lacks, every 2 minutes, would be all that moves the shared queue's lock on once its holder
        # died; this retries every REACQUIRE_EVERY_S.
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
