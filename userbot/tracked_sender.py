"""An account connection as the sender cache (userbot/sender_cache.py) keeps it and as one batch uses it.

A batch gets a `TrackedSender`: the same calls as the connection, and a failure that breaks the
connection (`breaks_connection`) marks it, so the cache drops it when the batch is done even when the
batch caught the error and went on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.outcomes import Kind, rule_for
from userbot.gateway import GatewayError, OutgoingMedia, Peer, SenderConnection, Sent

_TRANSPORT_CODES = frozenset({"NETWORK", "TIMEOUT"})


def breaks_connection(error: GatewayError) -> bool:
    """Whether `error` says the connection itself is unusable (rather than this one send refused):
    transport trouble, or a session Telegram no longer accepts."""
    return error.code in _TRANSPORT_CODES or rule_for(error.code).kind is Kind.REVOKED


@dataclass(eq=False, slots=True)
class CachedConnection:
    """One open connection of an account, as the cache keeps it."""

    name: str
    fingerprint: bytes
    opener: SenderConnection  # what `gateway.connect()` returned: the one to exit when closing
    conn: SenderConnection  # what entering it gave
    last_used: float
    users: int = 0
    broken: bool = False
    retired: bool = False  # out of the cache: closed as soon as its last user is done
    closed: bool = False


class TrackedSender:
    """The cached connection as one batch sees it: the same calls, and a failure that breaks the
    connection marks it, even when the batch catches the error and goes on. A connection closed for
    an unconfirmed claim (or whose claim's trust ran out before the watch came round, as after the
    process was frozen) refuses every call before it reaches Telegram."""

    def __init__(self, entry: CachedConnection, trusted: Callable[[CachedConnection], bool]) -> None:
        self._entry = entry
        self._trusted = trusted

    def _check(self) -> None:
        if self._entry.closed or not self._trusted(self._entry):
            self._entry.broken = True
            raise GatewayError("NETWORK", detail="the connection's claim is not confirmed")

    async def __aenter__(self) -> TrackedSender:  # already connected: entering again is a no-op
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _note(self, error: GatewayError) -> None:
        if breaks_connection(error):
            self._entry.broken = True

    async def send_text(self, peer: Peer, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent:
        self._check()
        try:
            return await self._entry.conn.send_text(peer, text, entities, random_id)
        except GatewayError as err:
            self._note(err)
            raise

    async def last_message_id(self, peer: Peer) -> int | None:
        self._check()
        try:
            return await self._entry.conn.last_message_id(peer)
        except GatewayError as err:
            self._note(err)
            raise

    async def find_own_post(self, peer: Peer, since: datetime, text: str) -> int | None:
        self._check()
        try:
            return await self._entry.conn.find_own_post(peer, since, text)
        except GatewayError as err:
            self._note(err)
            raise

    async def delete_message(self, peer: Peer, message_id: int) -> bool:
        self._check()
        try:
            return await self._entry.conn.delete_message(peer, message_id)
        except GatewayError as err:
            self._note(err)
            raise

    async def upload_media(self, media: OutgoingMedia) -> str:
        self._check()
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
        self._check()
        try:
            return await self._entry.conn.send_media(peer, media_handle, kind, caption, entities, random_id)
        except GatewayError as err:
            self._note(err)
            raise
