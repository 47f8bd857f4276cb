"""The per-account Redis lock of the send-batch job, on redis-py's `Lock`: `SET NX PX` with a random
token, and a TTL reset and a release that are compare-and-set scripts, so only the owner's token ever
moves the key.

What this class adds to it: the batch never waits for a busy account (the caller reschedules
instead), a background task resets the TTL while the batch runs, and `lost` tells the send loop to
stop before its next send once a renewal finds the lock gone or taken (docs/runtime.md, "Invariants"),
and a release that always ends: it neither waits on the renewal task for ever nor swallows a cancel
meant for the batch releasing it (its job timeout, a stopping worker's deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, LockNotOwnedError

from core.aio import finish_even_if_cancelled

log = logging.getLogger(__name__)

# How long a release waits for its renewal task to end once cancelled. A task ends at once when
# cancelled unless something under it swallows the cancel; the `released` flag ends it at its next
# wake-up then, and the release goes on without it rather than holding the batch (and with it the
# account) for ever.
RENEWER_EXIT_S = 1.0


class AccountLock:
    def __init__(self, redis: Redis, key: str, ttl_ms: int) -> None:
        self.key = key
        self.ttl_ms = ttl_ms
        # thread_local=False: the token belongs to this object, which one batch acquires, renews and
        # releases on one event loop (redis-py's default keeps it per thread).
        self._lock = Lock(redis, key, timeout=ttl_ms / 1000, blocking=False, thread_local=False)
        self._renewer: asyncio.Task[None] | None = None
        self._released = False
        self.lost = False  # renewal found the lock gone or taken: stop sending

    async def acquire(self) -> bool:
        acquired = bool(await self._lock.acquire())
        if acquired:
            self._released = False
            self._renewer = asyncio.create_task(self._renew())
        return acquired

    async def _renew(self) -> None:
        while not self._released:
            await asyncio.sleep(self.ttl_ms / 3000)
            if self._released:
                return
            try:
                await self._lock.reacquire()  # the TTL back to ttl_ms, if the token is still ours
            except LockNotOwnedError:
                self.lost = True
                return
            except Exception as exc:  # Redis hiccup: try again next round; the TTL still covers us
                log.warning("lock renewal failed: %s", type(exc).__name__)

    async def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours. Shielded, as the batch's give-back
        is: a batch cancelled while releasing (its job timeout, a stopping worker's deadline) still
        lets go of the account at once, then ends cancelled, rather than holding it for the TTL."""
        self._released = True
        await finish_even_if_cancelled(self._release())

    async def _release(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            # `asyncio.wait`, not `await renewer` under suppress(CancelledError): that also swallowed
            # a cancel of the releasing batch itself, and waited for ever on a renewer that did not end.
            await asyncio.wait([renewer], timeout=RENEWER_EXIT_S)
            if not renewer.done():
                log.warning("lock %s: its renewal did not stop when cancelled; released without it", self.key)
        # Not ours (never acquired, expired, or taken since): there is nothing of ours to delete.
        with contextlib.suppress(LockError):
            await self._lock.release()
