"""The account gateway: everything tgcast asks of a user's Telegram account (MTProto).

Two implementations live behind this interface: `userbot.telethon_gateway` (real Telegram) and
`userbot.fake` (the emulator used by tests, the sandbox and the benchmarks). Nothing outside
`userbot/` imports Telethon, so the rest of the code only ever sees these types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

GroupKind = Literal["group", "supergroup", "forum", "channel"]


@dataclass(frozen=True, slots=True)
class GroupInfo:
    chat_id: int  # Bot-API style id: -100… for channels/supergroups, -N for basic groups
    title: str
    kind: GroupKind
    access_hash: int | None = None


@dataclass(frozen=True, slots=True)
class Peer:
    """What the worker needs to address a group without listing dialogs."""

    chat_id: int
    kind: GroupKind
    access_hash: int | None = None
    topic_id: int | None = None


@dataclass(frozen=True, slots=True)
class CodeSent:
    phone_code_hash: str
    temp_session: str  # the half-authorised session that must sign in; a secret


@dataclass(frozen=True, slots=True)
class SignedIn:
    session: str  # durable session string; a secret, stored encrypted only
    tg_user_id: int
    phone: str
    name: str = ""  # the account's first and last name at Telegram


@dataclass(frozen=True, slots=True)
class PasswordNeeded:
    temp_session: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class OutgoingMedia:
    kind: Literal["photo", "video"]
    data: bytes
    file_name: str
    mime_type: str


# `SenderConnection.find_own_post`: the history shows the post was not made.
NOT_POSTED = 0
# How many of a group's latest messages `find_own_post` reads (one page of history).
HISTORY_PAGE = 100
# Telegram dates messages in whole seconds: a post made at `since` may read as up to a second earlier.
DATE_SLACK_S = 1


def own_post_in(
    messages: Sequence[tuple[int, bool, datetime, str]], since: datetime, text: str, *, whole_history: bool,
) -> int | None:
    """`find_own_post`'s answer from one page of history, newest first: (id, ours, date, text) each.
    Telegram trims a message's surrounding white space, so the texts are compared trimmed."""
    earliest = since - timedelta(seconds=DATE_SLACK_S)
    wanted = text.strip()
    reached_back = whole_history
    for message_id, ours, date, body in messages:
        if date < earliest:
            reached_back = True
            break
        if ours and body.strip() == wanted:
            return message_id
    return NOT_POSTED if reached_back else None


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int
    duplicate: bool = False  # Telegram answered RANDOM_ID_DUPLICATE: it was sent before
    # The media the sent message carries, as stored by Telegram (photo/document with its access
    # hash and file reference): a handle for later sends that, unlike an upload's, does not expire
    # with the upload. Only for `send_media`; None when the answer did not show the stored media.
    media_handle: str | None = None


# ---- errors -----------------------------------------------------------------------------------


@dataclass(eq=False)
class GatewayError(Exception):
    """A failure reported by Telegram (or the network), reduced to Telegram's own error name.

    `code` is the RPC error name with any number replaced by X (FLOOD_WAIT_X, SLOWMODE_WAIT_X), or a
    transport name (TIMEOUT, NETWORK). `seconds` carries the X. The delivery classifier and the
    login flow decide what each code means; this type only carries the facts.
    """

    code: str
    seconds: int | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.code if self.seconds is None else f"{self.code} ({self.seconds}s)")


class AccountGateway(Protocol):
    # login -------------------------------------------------------------------------------------
    async def send_code(self, phone: str) -> CodeSent: ...

    async def sign_in(
        self, temp_session: str, phone: str, code: str, phone_code_hash: str
    ) -> SignedIn | PasswordNeeded: ...

    async def check_password(self, temp_session: str, phone: str, password: str) -> SignedIn: ...

    async def discard_login(self, temp_session: str) -> None:
        """Forget a half-finished login (cancel, expiry); never raises."""
        ...

    async def log_out(self, session: str) -> None: ...

    async def identify(self, session: str) -> int:
        """The Telegram user id the session is logged in as; a revoked code when it is not (any more).
        For a session that came without it (an imported one)."""
        ...

    # groups ------------------------------------------------------------------------------------
    async def list_groups(self, session: str) -> Sequence[GroupInfo]:
        """Every group of the account where it may post now (docs/bot.md, "Groups")."""
        ...

    # sending -----------------------------------------------------------------------------------
    def connect(self, session: str) -> SenderConnection:
        """A connection of the account; use as `async with gateway.connect(s) as conn`.

        Workers keep it open across many jobs (`userbot.sender_cache.SenderCache`), so entering it must
        not cost a job's worth of checks: a session Telegram no longer accepts may connect, and then
        fails its first send with a revoked code (AUTH_KEY_UNREGISTERED, SESSION_REVOKED, …).
        """
        ...


class SenderConnection(Protocol):
    async def __aenter__(self) -> SenderConnection: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def send_text(self, peer: Peer, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent: ...

    async def last_message_id(self, peer: Peer) -> int | None:
        """The id of the group's (or the topic's) last message; None when it has none. One request."""
        ...

    async def delete_message(self, peer: Peer, message_id: int) -> bool:
        """Delete one message of this account's in the group; False when it was gone already. A message
        the account may not delete raises MESSAGE_DELETE_FORBIDDEN. One request."""
        ...

    async def find_own_post(self, peer: Peer, since: datetime, text: str) -> int | None:
        """Whether this account posted `text` (a caption, for media) in the group (or the topic) at or
        after `since`, as its recent history shows: the message's id if so; NOT_POSTED when that history
        reaches back past `since` without it; None when it cannot tell (a page of others' messages
        since). One request."""
        ...

    async def upload_media(self, media: OutgoingMedia) -> str:
        """Upload the file; returns an opaque handle for `send_media` (JSON text). An upload is
        kept by the server only for a while and may be accepted for one message only: after the
        first send, use the stored media's handle that send returned (`Sent.media_handle`)."""
        ...

    async def send_media(
        self,
        peer: Peer,
        media_handle: str,
        kind: Literal["photo", "video"],
        caption: str,
        entities: list[dict[str, Any]],
        random_id: int,
    ) -> Sent:
        """Send a photo/video by an upload's or a stored media's handle. A lost upload or an expired
        reference raises FILE_PART_X_MISSING, FILE_REFERENCE_EXPIRED and the like: upload again."""
        ...
