"""Account connections kept open across send batches: one connect per account per worker process.

Connecting an account costs several round trips (Telethon's connect() alone makes four requests:
initConnection, get_me, getState, getDifference). A worker running the batches of hundreds of
accounts would, connecting per batch, put those before every batch's first send and open hundreds of
connections a minute; `SenderCache` keeps each account's connected `SenderConnection` between
batches instead.

It is only a cache, bounded in time (an idle timeout longer than common broadcast intervals, so
every cycle of an account finds its connection) and in number (least recently used closed first,
never one in use). A connection that proves broken (network trouble, a revoked session) is dropped
so the next batch connects afresh; losing the whole cache costs reconnects, never a post. With
several worker processes, `userbot.claims` keeps an account's connection open in one at a time: a
connection whose claim this process has not confirmed within the claim's trust time (`trust_s`: the TTL
less a margin; `userbot.claim_trust`) is closed then, in use or not, because after the TTL another worker
may take the claim and connect — two connections of one session, which Telegram ends with
AUTH_KEY_DUPLICATED. A Redis outage longer than that costs this process its connections (reconnects
later), never the session. What a batch holds is a `userbot.tracked_sender.TrackedSender`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass

from core.logs import log_context
from userbot.claim_trust import ClaimTrust
from userbot.claims import ConnectionClaims
from userbot.gateway import AccountGateway, GatewayError, SenderConnection
from userbot.tracked_sender import CachedConnection, TrackedSender, breaks_connection

log = logging.getLogger(__name__)

def _fingerprint(session: str) -> bytes:
    # Only a digest is kept to notice a re-login: the cache never holds or logs the session itself.
    return hashlib.sha256(session.encode()).digest()


@dataclass(frozen=True, slots=True)
class SenderCacheStats:
    open: int  # connections in the cache (idle or in use)
    in_use: int
    connects: int  # connections opened since start
    reuses: int  # batches served by an already open connection
    closed_idle: int
    closed_lru: int
    dropped: int  # broken, discarded or replaced by a re-login


class SenderCache:
    """Connected senders by key (an account id), reused across batches. Use:

        async with cache.sender(account_id, session) as sender:
            await sender.send_text(...)

    Owned by one worker process on one event loop. `start()` runs `maintain()` in the background
    (idle sweep; with `claims`, also answering other workers and the claims' heartbeat, which makes
    it required then); `close_all()` ends it. Keys are told apart by their text (`str(key)`).
    `clock` is injectable so tests drive time without sleeping.
    """

    def __init__(
        self,
        gateway: AccountGateway,
        *,
        idle_s: float = 900,
        max_open: int = 2000,
        claims: ConnectionClaims | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_s <= 0 or max_open < 1:
            raise ValueError("idle_s must be positive and max_open at least 1")
        self._gateway = gateway
        self._idle_s = idle_s
        self._max_open = max_open
        self._claims = claims
        self._clock = clock
        self._entries: OrderedDict[str, CachedConnection] = OrderedDict()  # least recently used first
        self._locks: dict[str, asyncio.Lock] = {}  # one connect (or claim change) at a time per name
        self._open: Counter[str] = Counter()  # connections of each name not yet closed, cached or retired
        self._unclosed: set[CachedConnection] = set()  # those connections themselves (a retired one may be in use)
        # With claims: until when each open connection's claim is trusted; at that time it is closed.
        self._trust = ClaimTrust(claims.trust_s, clock) if claims is not None else None
        self._asked: set[str] = set()  # names other workers want, let go of once nothing here is open
        self._maintainer: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None  # the claims' heartbeat
        self._watch: asyncio.Task[None] | None = None  # closes connections whose claim went unconfirmed
        self._next_sweep = self._next_heartbeat = clock()
        self._closed = False
        self._connects = self._reuses = self._closed_idle = self._closed_lru = self._dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return str(key) in self._entries

    def stats(self) -> SenderCacheStats:
        return SenderCacheStats(
            open=len(self._entries),
            in_use=sum(1 for e in self._entries.values() if e.users),
            connects=self._connects,
            reuses=self._reuses,
            closed_idle=self._closed_idle,
            closed_lru=self._closed_lru,
            dropped=self._dropped,
        )

    # ---- use -----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def sender(self, key: Hashable, session: str) -> AsyncIterator[SenderConnection]:
        """The open connection of `key` for `session`, connecting (`gateway.connect(session)`) if
        there is none or the session changed. It stays open after the block; a `GatewayError` that
        breaks the connection (raised out of the block or seen on a call) drops it instead.
        Connecting failures propagate as the gateway raised them (with claims, GatewayError
        TIMEOUT too when another worker does not let go of the account in time)."""
        name = str(key)
        entry = await self._acquire(name, session)
        error: BaseException | None = None
        try:
            yield TrackedSender(entry, self._trusted)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._release(entry, error)

    async def discard(self, key: Hashable) -> None:
        """Close and forget `key`'s connection (revoked session, log-out); one in use is closed as
        soon as its batch ends. Nothing happens if there is none."""
        name = str(key)
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None:
                self._dropped += 1
                await self._retire(entry)

    async def sweep(self) -> int:
        """Close the connections unused for `idle_s`; returns how many."""
        now = self._clock()
        idle = [e for e in self._entries.values() if not e.users and now - e.last_used >= self._idle_s]
        for entry in idle:
            del self._entries[entry.name]
        for name in [n for n, lock in self._locks.items() if n not in self._entries and not lock.locked()]:
            del self._locks[name]
        self._closed_idle += len(idle)
        await self._close_many(idle)
        return len(idle)

    async def maintain(self) -> None:
        """One round of upkeep: close what the claims no longer cover, let go of what other workers
        asked for, keep the claims alive, and sweep idle connections (these two when due)."""
        now = self._clock()
        if self._claims is not None:
            # Before the heartbeat: a claim unconfirmed past its trust may have lapsed, and another
            # worker connected meanwhile; renewing it now would not undo that.
            await self.close_unconfirmed()
            # The claims first: letting go of many accounts on a busy box takes a while, and a claim
            # that lapsed meanwhile would let another worker open the account's session beside ours.
            await self._heartbeat(now)
            self._asked |= await self._claims.asked()
            await asyncio.gather(*(self._let_go(name) for name in sorted(self._asked)))
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_period_s()
            await self.sweep()

    async def _heartbeat(self, now: float) -> None:
        assert self._claims is not None
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._claims.heartbeat_s
        names = [n for n, count in self._open.items() if count]
        sent_at = self._clock()
        lost = set(await self._claims.refresh(names))
        for name in names:
            if name not in lost:
                self._confirm(name, sent_at)
        await asyncio.gather(*(self._lost(name) for name in lost))

    async def close_unconfirmed(self) -> int:
        """Close every connection whose claim was not confirmed within its trust time, in use or not
        (its batch's next call fails as a network error and the delivery is retried); returns how
        many. Needs no Redis: it is what keeps a session in one place while Redis is unreachable. The
        claims are left to lapse."""
        now = self._clock()
        lapsed = [e for e in self._unclosed if not self._trusted(e, now)]
        for entry in lapsed:
            if self._entries.get(entry.name) is entry:
                del self._entries[entry.name]
            entry.retired = entry.broken = True
        if lapsed:
            log.warning("closing %d account connection(s): their claims went unconfirmed for %.0f s",
                        len(lapsed), self._claims.trust_s if self._claims else 0)
            self._dropped += len(lapsed)
            await self._close_many(lapsed)
        return len(lapsed)

    def _trusted(self, entry: CachedConnection, now: float | None = None) -> bool:
        return self._trust is None or self._trust.trusted(entry.name, now)

    def _confirm(self, name: str, sent_at: float) -> None:
        assert self._trust is not None
        if self._open[name]:  # a confirmation arriving after the last connection closed starts nothing
            self._trust.confirm(name, sent_at)

    def start(self, every_s: float | None = None) -> None:
        """Run `maintain()` every `every_s` (default: half a second with claims, so another worker
        waits about that long for an account; else a quarter of `idle_s`, at most a minute), and with
        claims also their heartbeat on a schedule of its own, which a slow upkeep round never delays."""
        if self._maintainer is None:
            period = every_s if every_s is not None else 0.5 if self._claims else self._sweep_period_s()
            self._maintainer = asyncio.create_task(self._maintain_forever(period), name="sender-cache")
            if self._claims is not None:
                self._beater = asyncio.create_task(self._heartbeat_forever(), name="sender-cache-claims")
                self._watch = asyncio.create_task(self._watch_forever(), name="sender-cache-claims-watch")

    async def close_all(self) -> None:
        """Shut down: stop the upkeep, close every idle connection now and every one in use when its
        batch ends, and give up the claims of what was closed. No new work is taken after this."""
        self._closed = True
        for task in (self._maintainer, self._beater, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._maintainer = self._beater = self._watch = None
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            entry.retired = True
        await self._close_many([e for e in entries if not e.users])
        if self._claims is not None:
            for name in {e.name for e in entries if not self._open[e.name]}:
                await self._claims.release(name)  # the busy ones lapse with the heartbeat

    # ---- internals -----------------------------------------------------------------------------

    def _sweep_period_s(self) -> float:
        return min(60.0, self._idle_s / 4)

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def _acquire(self, name: str, session: str) -> CachedConnection:
        if self._closed:
            raise RuntimeError("the sender cache is closed")
        fingerprint = _fingerprint(session)
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None and (entry.broken or entry.fingerprint != fingerprint):
                self._dropped += 1
                await self._retire(entry)
                entry = None
            if entry is not None and self._claims is not None:
                sent_at = self._clock()
                if await self._claims.hold(name, own=True):
                    self._confirm(name, sent_at)
                else:
                    # Our claim lapsed (a stalled process) and another worker took the account: it has
                    # a connection open now, so ours must go before we may connect again.
                    self._dropped += 1
                    await self._retire(entry)
                    entry = None
            if entry is None:
                entry = await self._connect(name, session, fingerprint)
                if self._closed:  # shut down while connecting: serve this batch, then close
                    del self._entries[name]
                    entry.retired = True
            else:
                self._reuses += 1
            entry.users += 1
            self._entries.move_to_end(name)
        await self._evict_over_limit()
        return entry

    async def _connect(self, name: str, session: str, fingerprint: bytes) -> CachedConnection:
        # Under the name's lock. A claim taken here is kept alive by the heartbeat once connected.
        claimed_at = await self._claims.take(name) if self._claims is not None else 0.0
        opener = self._gateway.connect(session)
        # The connection outlives the batch that opens it: the tasks it starts (Telethon's send and
        # receive loops) must not log with that batch's job and cycle ids (core/logs.py, `bind`).
        batch_ids = log_context.set(None)
        try:
            conn = await opener.__aenter__()
        except BaseException:
            if self._claims is not None and not self._open[name]:
                await self._claims.release(name)
            raise
        finally:
            log_context.reset(batch_ids)
        entry = CachedConnection(name, fingerprint, opener, conn, last_used=self._clock())
        self._entries[name] = entry
        self._open[name] += 1
        self._unclosed.add(entry)
        if self._claims is not None:
            self._confirm(name, claimed_at)
        self._connects += 1
        log.debug("account %s: connected (%d open)", name, len(self._entries))
        return entry

    async def _release(self, entry: CachedConnection, error: BaseException | None) -> None:
        entry.users -= 1
        entry.last_used = self._clock()
        if isinstance(error, GatewayError) and breaks_connection(error):
            entry.broken = True
        current = self._entries.get(entry.name) is entry
        if entry.broken and current:
            self._dropped += 1
            log.debug("account %s: connection dropped", entry.name)
            await self._retire(entry)
        elif entry.retired:
            if not entry.users:
                await self._close(entry)
        elif current:
            self._entries.move_to_end(entry.name)
            await self._evict_over_limit()

    async def _retire(self, entry: CachedConnection) -> None:
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        entry.retired = True
        if not entry.users:
            await self._close(entry)

    async def _let_go(self, name: str) -> None:
        # Another worker needs this account: close ours (a busy one when its batch ends), then give
        # the claim up, under the name's lock so that no connect of ours can be under way.
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None:
                self._dropped += 1
                await self._retire(entry)
            if not self._open[name]:
                assert self._claims is not None
                await self._claims.release(name)
                self._asked.discard(name)

    async def _lost(self, name: str) -> None:
        async with self._lock(name):
            entry = self._entries.get(name)
            if entry is not None:
                log.warning("account %s: claim lapsed and taken by another worker; closing ours", name)
                self._dropped += 1
                await self._retire(entry)

    async def _evict_over_limit(self) -> None:
        excess = len(self._entries) - self._max_open
        victims: list[CachedConnection] = []
        for entry in self._entries.values():  # least recently used first
            if len(victims) >= excess:
                break
            if not entry.users:
                victims.append(entry)
        for entry in victims:
            del self._entries[entry.name]  # out before any await, so no batch can pick a closing one
        self._closed_lru += len(victims)
        await self._close_many(victims)

    async def _close_many(self, entries: list[CachedConnection]) -> None:
        if entries:
            await asyncio.gather(*(self._close(e) for e in entries))

    async def _close(self, entry: CachedConnection) -> None:
        if entry.closed:
            return
        entry.closed = True
        try:
            await entry.opener.__aexit__(None, None, None)
        except Exception as exc:  # a connection that fails to close is gone all the same
            log.warning("closing an account connection failed: %s", type(exc).__name__)
        finally:
            self._unclosed.discard(entry)
            self._open[entry.name] -= 1
            if not self._open[entry.name]:
                del self._open[entry.name]
                if self._trust is not None:
                    self._trust.forget(entry.name)

    async def _heartbeat_forever(self) -> None:
        assert self._claims is not None
        beat_s = self._claims.heartbeat_s
        while True:
            await asyncio.sleep(beat_s / 2)
            try:
                # Bounded: a Redis that stopped answering (no socket timeout) must not hold the beat.
                # `asyncio.timeout`, not `wait_for`: Python 3.11's wait_for swallows a cancel that comes
                # as the beat ends, and this loop then outlives `close_all`, which waits for it for ever.
                async with asyncio.timeout(beat_s):
                    await self._heartbeat(self._clock())
            except Exception as exc:  # Redis hiccup: beat again at the next round, within the trust time
                self._next_heartbeat = self._clock()
                log.warning("account connection claims' heartbeat failed: %s", type(exc).__name__)

    async def _watch_forever(self) -> None:
        # Apart from the heartbeat and the upkeep, which wait on Redis: this one never does.
        assert self._claims is not None
        period_s = min(1.0, (self._claims.ttl_ms / 1000 - self._claims.trust_s) / 4)
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.close_unconfirmed()
            except Exception:
                log.exception("closing account connections with unconfirmed claims failed")

    async def _maintain_forever(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.maintain()
            except Exception:  # a failed round must not end the upkeep
                log.exception("account connection upkeep failed")
