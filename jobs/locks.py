"""The per-account Redis lock of the send-batch job: `SET NX PX` with a random token, renewed while
the batch runs, released only by its owner (compare-and-delete in Lua)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from redis.asyncio import Redis

log = logging.getLogger(__name__)

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class AccountLock:
    def __init__(self, redis: Redis, key: str, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = secrets.token_hex(16)
        self._renewer: asyncio.Task[None] | None = None
        self.lost = False  # renewal found the lock gone or taken: stop sending

    async def acquire(self) -> bool:
        acquired = bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        if acquired:
            self._renewer = asyncio.create_task(self._renew())
        return acquired

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                extended = await self.redis.eval(_EXTEND, 1, self.key, self.token, str(self.ttl_ms))  # type: ignore[misc]
            except Exception as exc:  # Redis hiccup: try again next round; the TTL still covers us
                log.warning("lock renewal failed: %s", type(exc).__name__)
                continue
            if not extended:
                self.lost = True
                return

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await self.redis.eval(_RELEASE, 1, self.key, self.token)  # type: ignore[misc]
