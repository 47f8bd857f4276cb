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

Redis can also lose every claim at once while their holders still trust them (a FLUSHALL, a restart
without persistence): a claim found free then may still be in use. A marker key without TTL tells the
two apart: its absence means "Redis lost its state", and whoever finds it missing sets it to Redis's
clock. For `state_loss_wait_s` after that, nobody takes a free claim anew (holders re-asserting their own
claims may), so every holder has stopped trusting its claim before another worker can connect.

Not on redis-py's `Lock`, as the send batch's account lock is (`jobs/locks.py`): a claim is held by the
worker process, not by one holder object (the owner id is the worker's, and names its queue,
`worker/own_queues.py`); all of a worker's claims are renewed in one pipeline; a waiting worker asks the
holder to let go; and a free claim is not always free to take (the state-loss marker). A `Lock` has
none of these, and each would be a script beside it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

from redis.asyncio import Redis

from userbot.gateway import GatewayError

# Take the claim if it is ours (refreshing it) or free; else answer who holds it. A free claim is taken
# anew (ARGV[3] = "new") only once the state-loss marker (KEYS[2]) is ARGV[4] ms old, and answered 0
# before that; a holder re-asserting its own claim (ARGV[3] = "own") may take it back at once. Redis's
# clock, not the workers': they may run on machines whose clocks differ.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder then return holder end
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local since = tonumber(redis.call('GET', KEYS[2]) or '')
if not since then
  since = now_ms
  redis.call('SET', KEYS[2], since)
end
if ARGV[3] == 'own' or now_ms - since >= tonumber(ARGV[4]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# The heartbeat: `_CLAIM` in "own" mode for many claims at once (KEYS: the claims, then the state-loss
# marker), one script call for a worker's thousands of open accounts instead of one call each. Returns the
# 1-based positions of the claims another worker holds now.
_REFRESH = """
if redis.replicate_commands then redis.replicate_commands() end
local owner, ttl, marker = ARGV[1], ARGV[2], KEYS[#KEYS]
local lost = {}
for i = 1, #KEYS - 1 do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= owner then
    lost[#lost + 1] = i
  else
    if not holder and not redis.call('GET', marker) then
      local t = redis.call('TIME')
      redis.call('SET', marker, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
    end
    redis.call('SET', KEYS[i], owner, 'PX', ttl)
  end
end
return lost
"""
# Claims per heartbeat call: Redis runs nothing else while a script runs, so a worker's claims are
# renewed in slices of this many (~1 ms of Redis each), pipelined.
_REFRESH_SLICE = 500
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_TAKE_ASKS = """
local asked = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return asked
"""


# The owner a worker process chose for itself before its job loop opened (worker/process.py): its queue of
# its own is named after it (worker/own_queues.py), so the claims must carry the same id. Set in the worker's
# main thread, it reaches the job loop's tasks with the rest of that thread's context. Unset (tests, RQ's
# stock workers): every `ConnectionClaims` gets a fresh owner, and nothing is routed to it.
declared_owner: ContextVar[str | None] = ContextVar("claims_owner", default=None)


DEFAULT_TTL_S = 30.0


def state_loss_wait(setting: float | None) -> float:
    """The wait after a loss of Redis's state: the setting CLAIM_STATE_LOSS_WAIT_S, unset meaning the TTL."""
    return DEFAULT_TTL_S if setting is None else setting


def claim_key(prefix: str, name: str) -> str:
    return f"{prefix}conn:{name}"


def state_marker_key(prefix: str) -> str:
    """Since when (Redis's clock, ms) this Redis has kept the claims' state: see `_CLAIM`."""
    return f"{prefix}conn-state-since"


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
        ttl_s: float = DEFAULT_TTL_S,
        state_loss_wait_s: float = 0.0,
        wait_s: float | None = None,
        poll_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.owner = owner or declared_owner.get() or new_owner()
        self.ttl_ms = max(1, int(ttl_s * 1000))
        # A worker uses the claim TTL (worker/context.py, setting CLAIM_STATE_LOSS_WAIT_S): holders stop
        # trusting a claim within it, as they do when it lapses. 0 (tests, tools that hold no
        # connection beside a worker's) takes a free claim at once.
        self.state_loss_wait_ms = max(0, int(state_loss_wait_s * 1000))
        # Long enough for a dead holder's claim to lapse, or Redis's lost state to be waited out; a
        # live holder lets go within a second.
        self.wait_s = wait_s if wait_s is not None else max(ttl_s, state_loss_wait_s) + 5
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)
        self._refresh = redis.register_script(_REFRESH)
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

    def _marker_key(self) -> str:
        return state_marker_key(self.prefix)

    async def _claim_as(self, name: str, mode: str, client: Any = None) -> Any:
        return await self._claim(keys=[self._key(name), self._marker_key()],
                                 args=[self.owner, self.ttl_ms, mode, self.state_loss_wait_ms], client=client)

    async def hold(self, name: str, *, own: bool = False) -> bool:
        """Claim `name` if it is ours (refreshing it) or free; False if another worker holds it, or if
        it is free but Redis lost its state too recently to take it anew. `own`: the caller has the
        connection open under this claim and re-asserts it (no wait after a loss of state)."""
        return await self._claim_as(name, "own" if own else "new") == 1

    async def take(self, name: str) -> float:
        """Claim `name`, asking its holder to let go and waiting for it if need be; returns when (by
        `clock`) the request that took it was sent, which is when its TTL started at the earliest.
        Raises GatewayError("TIMEOUT") if it is still held after `wait_s`: the batch is retried later."""
        deadline = self._clock() + self.wait_s
        asked: set[bytes] = set()
        while True:
            sent_at = self._clock()
            holder = await self._claim_as(name, "new")
            if holder == 1:
                return sent_at
            # 0: free, but Redis lost its state too recently. Ask once per holder: a new one may have come in.
            if holder != 0 and holder not in asked:
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
        slices = [names[at:at + _REFRESH_SLICE] for at in range(0, len(names), _REFRESH_SLICE)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in slices:
                await self._refresh(keys=[*(self._key(name) for name in part), self._marker_key()],
                                    args=[self.owner, self.ttl_ms], client=pipe)
            answers = await pipe.execute()
        return [part[int(position) - 1] for part, lost in zip(slices, answers, strict=True) for position in lost]

    async def asked(self) -> set[str]:
        """The names other workers asked this one to let go of since the last call."""
        raw = await self._take_asks(keys=[self._asks_key(self.owner)], args=[])
        return {r.decode() for r in raw}
