"""Account connections kept open across send batches: one connect per account per worker process.

Connecting an account costs Telegram several round trips, and Telegram watches how often an account
connects. A worker that runs every batch of hundreds of accounts would, connecting per batch, spend
more time connecting than sending; `SenderCache` keeps each account's connected `SenderConnection`
between batches instead.

It is only a cache, bounded in time (an idle timeout longer
than common broadcast intervals, so every cycle of an account finds its connection) and in number
(least recently used closed first, never one in use). A connection that proves broken (network
trouble, a revoked session) is dropped so the next batch connects afresh; losing the whole cache
costs reconnects, never a post.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from core.outcomes import Kind, rule_for
from userbot.gateway import AccountGateway, GatewayError, OutgoingMedia, Peer, SenderConnection, Sent

log = logging.getLogger(__name__)

_TRANSPORT_CODES = frozenset({"NETWORK", "TIMEOUT"})


def breaks_connection(error: GatewayError) -> bool:
    """Whether `error` says the connection itself is unusable (rather than this one send refused):
    transport trouble, or a session Telegram no longer accepts."""
    return error.code in _TRANSPORT_CODES or rule_for(error.code).kind is Kind.REVOKED


def _fingerprint(session: str) -> bytes:
    # Only a digest is kept to notice a re-login: the cache never holds or logs the session itself.
    return hashlib.sha256(session.encode()).digest()


@dataclass(eq=False, slots=True)
class _Entry:
    fingerprint: bytes
    opener: SenderConnection  # what `gateway.connect()` returned: the one to exit when closing
    conn: SenderConnection  # what entering it gave
    last_used: float
    users: int = 0
    broken: bool = False
    retired: bool = False  # out of the cache: closed as soon as its last user is done
    closed: bool = False


@dataclass(frozen=True, slots=True)
class SenderCacheStats:
    open: int  # connections in the cache (idle or in use)
    in_use: int
    connects: int  # connections opened since start
    reuses: int  # batches served by an already open connection
    closed_idle: int
    closed_lru: int
    dropped: int  # broken, discarded or replaced by a re-login


class _TrackedSender:
    """The cached connection as one batch sees it: the same calls, and a failure that breaks the
    connection marks it, even when the batch catches the error and goes on."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    async def __aenter__(self) -> _TrackedSender:  # already connected: entering again is a no-op
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _note(self, error: GatewayError) -> None:
        if breaks_connection(error):
            self._entry.broken = True

    async def send_text(self, peer: Peer, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent:
        try:
            return await self._entry.conn.send_text(peer, text, entities, random_id)
        except GatewayError as err:
            self._note(err)
            raise

    async def upload_media(self, media: OutgoingMedia) -> str:
        try:
            return await self._entry.conn.upload_media(media)
        except GatewayError as err:
            self._note(err)
            raise

    async def send_media(
        self,
        peer: Peer,
        media_handle: str,
        kind: Literal["photo", "video"],
        caption: str,
        entities: list[dict[str, Any]],
        random_id: int,
    ) -> Sent:
        try:
            return await self._entry.conn.send_media(peer, media_handle, kind, caption, entities, random_id)
        except GatewayError as err:
            self._note(err)
            raise


class SenderCache:
    """Connected senders by key (an account), reused across batches. Use:

        async with cache.sender(account_id, session) as sender:
            await sender.send_text(...)

    Owned by one worker process on one event loop; `start()` sweeps idle connections in the
    background, `close_all()` ends it. `clock` is injectable so tests drive time without sleeping.
    """

    def __init__(
        self,
        gateway: AccountGateway,
        *,
        idle_s: float = 900,
        max_open: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if idle_s <= 0 or max_open < 1:
            raise ValueError("idle_s must be positive and max_open at least 1")
        self._gateway = gateway
        self._idle_s = idle_s
        self._max_open = max_open
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()  # least recently used first
        self._locks: dict[Hashable, asyncio.Lock] = {}  # one connect at a time per key
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self._connects = self._reuses = self._closed_idle = self._closed_lru = self._dropped = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

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
        Connecting failures propagate as the gateway raised them."""
        entry = await self._acquire(key, session)
        error: BaseException | None = None
        try:
            yield _TrackedSender(entry)
        except BaseException as exc:
            error = exc
            raise
        finally:
            await self._release(key, entry, error)

    async def discard(self, key: Hashable) -> None:
        """Close and forget `key`'s connection (revoked session, log-out); one in use is closed as
        soon as its batch ends. Nothing happens if there is none."""
        async with self._lock(key):
            entry = self._entries.get(key)
            if entry is not None:
                self._dropped += 1
                await self._retire(key, entry)

    async def sweep(self) -> int:
        """Close the connections unused for `idle_s`; returns how many."""
        now = self._clock()
        idle = [(k, e) for k, e in self._entries.items() if not e.users and now - e.last_used >= self._idle_s]
        for key, _ in idle:
            del self._entries[key]
        for key in [k for k, lock in self._locks.items() if k not in self._entries and not lock.locked()]:
            del self._locks[key]
        self._closed_idle += len(idle)
        await self._close_many([e for _, e in idle])
        return len(idle)

    def start(self, every_s: float | None = None) -> None:
        """Sweep in the background every `every_s` (default: a quarter of `idle_s`, at most a minute)."""
        if self._sweeper is None:
            period = every_s if every_s is not None else min(60.0, self._idle_s / 4)
            self._sweeper = asyncio.create_task(self._sweep_forever(period), name="sender-cache-sweep")

    async def close_all(self) -> None:
        """Shut down: stop sweeping, close every idle connection now and every one in use when its
        batch ends. The cache takes no new work after this."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            entry.retired = True
        await self._close_many([e for e in entries if not e.users])

    # ---- internals -----------------------------------------------------------------------------

    def _lock(self, key: Hashable) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _acquire(self, key: Hashable, session: str) -> _Entry:
        if self._closed:
            raise RuntimeError("the sender cache is closed")
        fingerprint = _fingerprint(session)
        async with self._lock(key):
            entry = self._entries.get(key)
            if entry is not None and (entry.broken or entry.fingerprint != fingerprint):
                self._dropped += 1
                await self._retire(key, entry)
                entry = None
            if entry is None:
                opener = self._gateway.connect(session)
                conn = await opener.__aenter__()
                entry = _Entry(fingerprint, opener, conn, last_used=self._clock())
                self._entries[key] = entry
                self._connects += 1
                log.debug("account %s: connected (%d open)", key, len(self._entries))
            else:
                self._reuses += 1
            entry.users += 1
            self._entries.move_to_end(key)
        await self._evict_over_limit()
        return entry

    async def _release(self, key: Hashable, entry: _Entry, error: BaseException | None) -> None:
        entry.users -= 1
        entry.last_used = self._clock()
        if isinstance(error, GatewayError) and breaks_connection(error):
            entry.broken = True
        current = self._entries.get(key) is entry
        if entry.broken and current:
            self._dropped += 1
            log.debug("account %s: connection dropped", key)
            await self._retire(key, entry)
        elif entry.retired:
            if not entry.users:
                await self._close(entry)
        elif current:
            self._entries.move_to_end(key)
            await self._evict_over_limit()

    async def _retire(self, key: Hashable, entry: _Entry) -> None:
        if self._entries.get(key) is entry:
            del self._entries[key]
        entry.retired = True
        if not entry.users:
            await self._close(entry)

    async def _evict_over_limit(self) -> None:
        excess = len(self._entries) - self._max_open
        victims: list[tuple[Hashable, _Entry]] = []
        for key, entry in self._entries.items():  # least recently used first
            if len(victims) >= excess:
                break
            if not entry.users:
                victims.append((key, entry))
        for key, _ in victims:
            del self._entries[key]  # out before any await, so no batch can pick a closing one
        self._closed_lru += len(victims)
        await self._close_many([e for _, e in victims])

    async def _close_many(self, entries: list[_Entry]) -> None:
        if entries:
            await asyncio.gather(*(self._close(e) for e in entries))

    async def _close(self, entry: _Entry) -> None:
        if entry.closed:
            return
        entry.closed = True
        try:
            await entry.opener.__aexit__(None, None, None)
        except Exception as exc:  # a connection that fails to close is gone all the same
            log.warning("closing an account connection failed: %s", type(exc).__name__)

    async def _sweep_forever(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.sweep()
            except Exception:  # a failed sweep must not end sweeping
                log.exception("sweeping idle account connections failed")
