"""The per-account Redis lock of the send-batch job, on redis-py's `Lock`: `SET NX PX` with a random
token, and a TTL reset and a release that are compare-and-set scripts, so only the owner's token ever
moves the key.

What this class adds to it: the batch never waits for a busy account (the caller reschedules
instead), a background task resets the TTL while the batch runs, and `lost` tells the send loop to
stop before its next send once a renewal finds the lock gone or taken (docs/runtime.md, "Invariants").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, LockNotOwnedError

log = logging.getLogger(__name__)


class AccountLock:
    def __init__(self, redis: Redis, key: str, ttl_ms: int) -> None:
        self.key = key
        self.ttl_ms = ttl_ms
        # thread_local=False: the token belongs to this object, which one batch acquires, renews and
        # releases on one event loop (redis-py's default keeps it per thread).
        self._lock = Lock(redis, key, timeout=ttl_ms / 1000, blocking=False, thread_local=False)
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False  # renewal found the lock gone or taken: stop sending

    async def acquire(self) -> bool:
        acquired = bool(await self._lock.acquire())
        if acquired:
            self._renewer = asyncio.create_task(self._renew())
        return acquired

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                await self._lock.reacquire()  # the TTL back to ttl_ms, if the token is still ours
            except LockNotOwnedError:
                self.lost = True
                return
            except Exception as exc:  # Redis hiccup: try again next round; the TTL still covers us
                log.warning("lock renewal failed: %s", type(exc).__name__)

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        # Not ours (never acquired, expired, or taken since): there is nothing of ours to delete.
        with contextlib.suppress(LockError):
            await self._lock.release()
