"""RQ queues and the enqueue helpers of the broadcast runtime.

No implicit global connection: every helper takes the sync Redis connection it uses. Job ids are
derived from the cycle (`send-<cycle_id>-<tag>`), so repeating an enqueue after a crash is a no-op,
and a per-cycle pointer names the job that currently carries the cycle, for the tick's recovery.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis as SyncRedis
from rq import Queue
from rq.job import Job, JobStatus

from core.settings import Settings

SEND_BATCH = "jobs.send_batch.send_batch"  # by name: enqueuing must not import the worker's code
JOB_TIMEOUT_S = 900
RESULT_TTL_S = 600
_POINTER_TTL_S = 8 * 24 * 3600  # longer than any cycle lives


def broadcast_queue_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}-broadcast"


def sync_redis(settings: Settings) -> SyncRedis:
    return SyncRedis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)


def broadcast_queue(settings: Settings, connection: SyncRedis) -> Queue:
    return Queue(broadcast_queue_name(settings), connection=connection)


def account_lock_key(settings: Settings, owner_id: int) -> str:
    return f"{settings.redis_prefix}lock:account:{owner_id}"


def _pointer_key(settings: Settings, cycle_id: int) -> str:
    return f"{settings.redis_prefix}cycle-job:{cycle_id}"


def _seq_key(settings: Settings, cycle_id: int) -> str:
    return f"{settings.redis_prefix}cycle-job-seq:{cycle_id}"


def send_job_id(cycle_id: int, tag: str) -> str:
    return f"send-{cycle_id}-{tag}"


def enqueue_send(
    settings: Settings, connection: SyncRedis, cycle_id: int, at: datetime, *,
    tag: str | None = None, attempt: int = 0, now: datetime | None = None, queue_name: str | None = None,
) -> str | None:
    """Run `send_batch(cycle_id, attempt)` at `at`. `tag` None takes the cycle's next sequence number
    (continuations, retries, recovery); tag "0" is the tick's first job. `queue_name`: a worker's own
    queue (jobs/routing.py) instead of the shared one. Returns the job id, or None when that job already
    exists."""
    if tag is None:
        tag = str(connection.incr(_seq_key(settings, cycle_id)))
        connection.expire(_seq_key(settings, cycle_id), _POINTER_TTL_S)
    job_id = send_job_id(cycle_id, tag)
    if Job.exists(job_id, connection=connection):
        return None
    queue = Queue(queue_name, connection=connection) if queue_name else broadcast_queue(settings, connection)
    options = {"job_id": job_id, "job_timeout": JOB_TIMEOUT_S, "result_ttl": RESULT_TTL_S, "failure_ttl": 86400}
    current = now or datetime.now(UTC)
    if at <= current:
        queue.enqueue(SEND_BATCH, cycle_id, attempt, **options)
    else:
        if at.microsecond:
            # RQ's scheduled registry keeps whole seconds, truncated: round up so a job never runs
            # early (a continuation waiting for a flood pause would wake, find nothing due, and spin).
            at = at.replace(microsecond=0) + timedelta(seconds=1)
        queue.enqueue_at(at, SEND_BATCH, cycle_id, attempt, **options)
    connection.set(_pointer_key(settings, cycle_id), job_id, ex=_POINTER_TTL_S)
    return job_id


_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def cycle_has_live_job(settings: Settings, connection: SyncRedis, cycle_id: int, owner_id: int) -> bool:
    """Whether some job will still carry this cycle on. A job marked started whose account lock is
    gone is treated as dead: a SIGKILLed worker leaves its job "started" for a long while, but its
    lock expires within LOCK_TTL because nobody renews it."""
    raw = connection.get(_pointer_key(settings, cycle_id))
    if raw is None:
        return False
    job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        status = Job.fetch(job_id, connection=connection).get_status(refresh=False)
    except Exception:  # NoSuchJobError, or a job hash lost with a Redis flush
        return False
    if status in _WAITING:
        return True
    if status == JobStatus.STARTED:
        return bool(connection.exists(account_lock_key(settings, owner_id)))
    return False


def forget_cycle(settings: Settings, connection: SyncRedis, cycle_id: int) -> None:
    connection.delete(_pointer_key(settings, cycle_id), _seq_key(settings, cycle_id))


# ---- announcements (admin) ------------------------------------------------------------------------

ANNOUNCE = "jobs.announce.run_announcement"
ANNOUNCE_TIMEOUT_S = 6 * 3600  # ~25 users/s: hours for a very large audience


def announce_queue_name(settings: Settings) -> str:
    return f"{settings.queue_prefix}-announce"


def announce_job_id(announcement_id: int) -> str:
    return f"announce-{announcement_id}"


def enqueue_announcement(settings: Settings, connection: SyncRedis, announcement_id: int) -> str | None:
    """Job id from the announcement, so a repeated confirm cannot queue it twice. Returns the job id,
    or None when it already exists."""
    job_id = announce_job_id(announcement_id)
    if Job.exists(job_id, connection=connection):
        return None
    Queue(announce_queue_name(settings), connection=connection).enqueue(
        ANNOUNCE, announcement_id, job_id=job_id, job_timeout=ANNOUNCE_TIMEOUT_S, result_ttl=RESULT_TTL_S,
        failure_ttl=7 * 86400,
    )
    return job_id
