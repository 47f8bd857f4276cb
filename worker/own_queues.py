"""Account-affine routing: an account's send batches go to the worker process that holds its connection.

Every worker process (worker/process.py) has a queue of its own, `<queue_prefix>-broadcast@<owner>`, named
after the owner id of its connection claims (userbot/claims.py), and listens to it before the shared
broadcast queue, in the same slots. The tick asks `home_queues` where each due account's connection is
held; a running batch enqueues its continuation on its own worker's queue (`JobContext.home_queue`).
Accounts nobody holds go to the shared queue, so new accounts spread to whichever worker has free slots.
These are ordinary RQ queues: rq-dashboard and the registries show them like any other.

A worker's queue must never strand a job when the worker dies (the tick's recovery takes a queued or
scheduled job for a live one). So a worker keeps a liveness key, `<redis_prefix>home:<owner>`, written
with its RQ heartbeat by the thread that dequeues (HOME_TTL_S, as long as a connection claim lives), and
deletes it as soon as it stops taking jobs. A home whose key is gone is dead or leaving: any live worker
moves its waiting jobs, queued and scheduled, to the shared queue (`hand_over`), and `home_queues`
stops routing to it. docs/worker.md, "Routing", explains the choices.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis as SyncRedis
from rq.job import Job
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry

from core.settings import Settings
from userbot.claims import claim_key, declared_owner
from worker.queues import broadcast_queue_name

# A worker's liveness key lives as long as a connection claim (30 s) and is written every HOME_BEAT_S: a
# SIGKILLed worker's queue is handed over within HOME_TTL_S + HANDOVER_EVERY_S, by when its claims have
# lapsed too, so its accounts could not have been served sooner anyway.
HOME_TTL_S = 30
HOME_BEAT_S = 10.0
# The job loop must answer the main thread within this for the liveness key to be written.
LOOP_STALL_S = 10.0
HANDOVER_EVERY_S = 2.0

# Which of these accounts' claim holders is a live worker with a queue of its own: one round trip for the
# whole tick. The liveness keys cannot be named up front (they depend on the holders), so the script
# reads them itself; tgcast's Redis is a single instance, never a cluster.
_HOLDERS = """
local found = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder and redis.call('EXISTS', ARGV[1] .. holder) == 1 then
    found[i] = holder
  else
    found[i] = false
  end
end
return found
"""

# Everything waiting in a worker's queue to the shared one, atomically: a job is either still in the
# worker's list (then the worker has not taken it and never will) or the worker took it first. Queued
# jobs go to the front of the shared queue (they have waited already), scheduled ones keep their time.
_HAND_OVER = """
local moved, scheduled = 0, 0
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
for i = #ids, 1, -1 do
  local job = ARGV[2] .. ids[i]
  if redis.call('EXISTS', job) == 1 then
    redis.call('HSET', job, 'origin', ARGV[1])
    redis.call('LPUSH', KEYS[2], ids[i])
    moved = moved + 1
  end
end
local due = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
redis.call('DEL', KEYS[3])
for i = 1, #due, 2 do
  local job = ARGV[2] .. due[i]
  if redis.call('EXISTS', job) == 1 then
    redis.call('HSET', job, 'origin', ARGV[1])
    redis.call('ZADD', KEYS[4], due[i + 1], due[i])
    scheduled = scheduled + 1
  end
end
return {moved, scheduled}
"""


def personal_queue_name(settings: Settings, owner: str) -> str:
    return f"{broadcast_queue_name(settings)}@{owner}"


def owner_of(settings: Settings, queue_name: str) -> str | None:
    prefix = f"{broadcast_queue_name(settings)}@"
    return queue_name[len(prefix):] if queue_name.startswith(prefix) else None


def own_queue(settings: Settings, claims_owner: str) -> str | None:
    """The queue of the worker process whose claims these are, if that process routes (it declared the
    owner before its job loop opened); None elsewhere: continuations go to the shared queue."""
    return personal_queue_name(settings, claims_owner) if claims_owner == declared_owner.get() else None


def _home_key(settings: Settings, owner: str) -> str:
    return f"{settings.redis_prefix}home:{owner}"


def home_queues(settings: Settings, connection: SyncRedis, owner_ids: Iterable[int]) -> dict[int, str]:
    """The queue of the live worker process holding each account's connection, for the accounts that
    have one; accounts left out go to the shared broadcast queue."""
    ids = list(dict.fromkeys(owner_ids))
    if not ids:
        return {}
    holders = connection.register_script(_HOLDERS)(
        keys=[claim_key(settings.redis_prefix, str(i)) for i in ids], args=[_home_key(settings, "")],
    )
    return {
        owner_id: personal_queue_name(settings, holder.decode() if isinstance(holder, bytes) else str(holder))
        for owner_id, holder in zip(ids, holders, strict=True) if holder
    }


def announce_home(settings: Settings, connection: SyncRedis, owner: str) -> None:
    """This worker serves its queue for the next HOME_TTL_S."""
    connection.set(_home_key(settings, owner), personal_queue_name(settings, owner), ex=HOME_TTL_S)


def withdraw_home(settings: Settings, connection: SyncRedis, owner: str) -> None:
    """This worker takes no more jobs: route nothing more to it, and let the others hand its queue over."""
    connection.delete(_home_key(settings, owner))


def hand_over(settings: Settings, connection: SyncRedis, queue_name: str) -> tuple[int, int]:
    """Move the jobs waiting in a worker's queue (queued, and scheduled in RQ's registry, which only that
    worker's scheduler serves) to the shared queue; returns (queued, scheduled) moved."""
    shared = Queue(broadcast_queue_name(settings), connection=connection)
    mine = Queue(queue_name, connection=connection)
    moved = connection.register_script(_HAND_OVER)(
        keys=[mine.key, shared.key, ScheduledJobRegistry(queue=mine).key, ScheduledJobRegistry(queue=shared).key],
        args=[shared.name, Job.redis_job_namespace_prefix],
    )
    return int(moved[0]), int(moved[1])


def dead_homes(settings: Settings, connection: SyncRedis, *, own: str | None = None) -> list[str]:
    """The queues of workers whose liveness key is gone (SIGKILLed, or leaving), except `own`. Found in
    RQ's own list of queues, which every enqueue and `enqueue_at` adds its queue to: a job can never
    wait in a worker queue that this does not see."""
    prefix = f"{Queue.redis_queue_namespace_prefix}{broadcast_queue_name(settings)}@"
    keys = sorted(k.decode() for k in connection.smembers(Queue.redis_queues_keys))  # type: ignore[union-attr]
    names = [k[len(Queue.redis_queue_namespace_prefix):] for k in keys if k.startswith(prefix)]
    others = [n for n in names if n != own]
    if not others:
        return []
    beats: list[bytes | None] = connection.mget(  # type: ignore[assignment]
        [_home_key(settings, owner_of(settings, n) or "") for n in others])
    return [n for n, beat in zip(others, beats, strict=True) if beat is None]
