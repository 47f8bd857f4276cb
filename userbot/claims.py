"""Across worker processes: at most one holds an account's connection open at a time.

Telegram answers an authorisation key used from two IP addresses at once with AUTH_KEY_DUPLICATED,
and the session is dead from then on (the user must log in again). Connections kept open between
batches (`userbot.sender_cache.SenderCache`), with an account's batches landing on any worker replica,
would otherwise leave one open on every replica that ever served the account.

So a worker claims every account whose connection it keeps: a Redis key holding the worker's id,
kept alive by a heartbeat (a dead worker's claims lapse within the TTL, as its sockets did). A worker
that needs an account another one holds asks the holder to let go, and waits until it has.

A claim lapses in Redis whether or not its holder noticed: a holder cut off from Redis (an outage, a
partition) cannot renew it, and after the TTL another worker may take it. So a holder trusts a claim only
for `trust_s` (the TTL less a safety margin) after the request that last confirmed it was sent, and
closes the connection when that runs out (`userbot.claim_trust`), before anyone else can take it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar

from redis.asyncio import Redis

from userbot.gateway import GatewayError

# Take the claim if it is free or already ours (refreshing it); else answer who holds it.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return holder
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_TAKE_ASKS = """
local asked = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return asked
"""


# The owner a worker process chose for itself before its job loop opened (jobs/worker.py): its queue of
# its own is named after it (jobs/routing.py), so the claims must carry the same id. Set in the worker's
# main thread, it reaches the job loop's tasks with the rest of that thread's context. Unset (tests, RQ's
# stock workers): every `ConnectionClaims` gets a fresh owner, and nothing is routed to it.
declared_owner: ContextVar[str | None] = ContextVar("claims_owner", default=None)


def claim_key(prefix: str, name: str) -> str:
    return f"{prefix}conn:{name}"


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class ConnectionClaims:
    """The claims of one worker process. Names are the cache's keys as text (account ids)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        owner: str | None = None,
        *,
        ttl_s: float = 30.0,
        wait_s: float | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.owner = owner or declared_owner.get() or new_owner()
        self.ttl_ms = max(1, int(ttl_s * 1000))
        # Long enough for a dead holder's claim to lapse; a live holder lets go within a second.
        self.wait_s = wait_s if wait_s is not None else ttl_s + 5
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._take_asks = redis.register_script(_TAKE_ASKS)

    @property
    def heartbeat_s(self) -> float:
        return self.ttl_ms / 3000

    @property
    def trust_s(self) -> float:
        """How long after sending a request that confirmed a claim its holder may go on using the
        connection: the TTL less a third of it. The margin covers closing the connections (seconds
        on a saturated box), the watch's own period, and a heartbeat lost to a Redis hiccup: at the
        heartbeat's pace a healthy holder confirms every ~10 s of the 20 s it may trust a claim."""
        return self.ttl_ms * 2 / 3000

    def _key(self, name: str) -> str:
        return claim_key(self.prefix, name)

    def _asks_key(self, owner: str) -> str:
        return f"{self.prefix}conn-asks:{owner}"

    async def hold(self, name: str) -> bool:
        """Claim `name` if it is free or ours (refreshing it); False if another worker holds it."""
        return await self._claim(keys=[self._key(name)], args=[self.owner, self.ttl_ms]) == 1

    async def take(self, name: str) -> float:
        """Claim `name`, asking its holder to let go and waiting for it if need be; returns when (by
        `clock`) the request that took it was sent, which is when its TTL started at the earliest.
        Raises GatewayError("TIMEOUT") if it is still held after `wait_s`: the batch is retried later."""
        deadline = self._clock() + self.wait_s
        asked: set[bytes] = set()
        while True:
            sent_at = self._clock()
            holder = await self._claim(keys=[self._key(name)], args=[self.owner, self.ttl_ms])
            if holder == 1:
                return sent_at
            if holder not in asked:  # once per holder: a new holder may have come in meanwhile
                asked.add(holder)
                async with self.redis.pipeline(transaction=False) as pipe:
                    asks = self._asks_key(holder.decode())
                    pipe.sadd(asks, name)
                    pipe.pexpire(asks, self.ttl_ms)
                    await pipe.execute()
            if self._clock() >= deadline:
                raise GatewayError("TIMEOUT", detail="another worker holds the account's connection")
            await self._sleep(self.poll_s)

    async def release(self, name: str) -> None:
        await self._release(keys=[self._key(name)], args=[self.owner])

    async def refresh(self, names: Iterable[str]) -> list[str]:
        """Keep these claims alive; returns those another worker holds now (ours had lapsed)."""
        names = list(names)
        if not names:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                await self._claim(keys=[self._key(name)], args=[self.owner, self.ttl_ms], client=pipe)
            answers = await pipe.execute()
        return [name for name, answer in zip(names, answers, strict=True) if answer != 1]

    async def asked(self) -> set[str]:
        """The names other workers asked this one to let go of since the last call."""
        raw = await self._take_asks(keys=[self._asks_key(self.owner)], args=[])
        return {r.decode() for r in raw}
