"""The real `AccountGateway`: a user's Telegram account through Telethon (MTProto).

Secrets (session strings, phone codes, 2FA passwords) are never logged or put into an error text;
errors leave this module only as `GatewayError` (see `userbot.errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from telethon import TelegramClient, utils
from telethon.crypto import rsa
from telethon.errors import SessionPasswordNeededError
from telethon.sessions import StringSession
from telethon.tl import functions, types

from userbot.errors import to_gateway_error
from userbot.gateway import (
    HISTORY_PAGE,
    CodeSent,
    GatewayError,
    GroupInfo,
    GroupKind,
    OutgoingMedia,
    PasswordNeeded,
    Peer,
    Sent,
    SignedIn,
    own_post_in,
)

log = logging.getLogger(__name__)

_GENERAL_TOPIC_ID = 1  # a forum's General topic takes plain messages, without reply_to
_HANDLE_VERSION = 1
_added_public_keys: set[str] = set()
_UPLOAD_PART = 512 * 1024
# Stored-media handles a connection remembers: a few cycles' worth (one or two per media cycle).
STORED_MEDIA_MAX = 32


# ---- pure helpers (unit-tested offline) ----------------------------------------------------------


def _bans_sending(rights: Any) -> bool:
    # view_messages set on one's own rights means kicked. Of the send rights only send_messages
    # counts: a group that forbids, say, media still takes a text broadcast, and the send itself
    # reports CHAT_SEND_*_FORBIDDEN precisely when the content does not fit.
    return bool(rights is not None and (rights.send_messages or rights.view_messages))


def classify_dialog_entity(entity: object) -> GroupKind | None:
    """The kind of group `entity` is if the account may post there now, else None."""
    if isinstance(entity, types.Chat):
        # `kicked` existed in older layers only; ChatForbidden replaced it.
        if entity.deactivated or entity.left or entity.migrated_to is not None:
            return None
        if getattr(entity, "kicked", False):
            return None
        if not (entity.creator or entity.admin_rights) and _bans_sending(entity.default_banned_rights):
            return None
        return "group"
    if isinstance(entity, types.Channel):
        # min entities carry no usable access hash; monoforums are a channel's direct-message inbox.
        if entity.left or entity.min or getattr(entity, "monoforum", False):
            return None
        if _bans_sending(entity.banned_rights):
            return None
        privileged = bool(entity.creator or entity.admin_rights)
        if entity.megagroup:
            # Admins are exempt from default restrictions; a gigagroup is admins-only by design.
            if not privileged and (entity.gigagroup or _bans_sending(entity.default_banned_rights)):
                return None
            return "forum" if entity.forum else "supergroup"
        if entity.creator or (entity.admin_rights is not None and entity.admin_rights.post_messages):
            return "channel"
        return None
    return None  # users, ChatForbidden/ChannelForbidden (kicked or banned), anything else


_EntityBuilder = Callable[[int, int, Mapping[str, Any]], Any]


def _plain(cls: Any) -> _EntityBuilder:
    return lambda offset, length, _raw: cls(offset=offset, length=length)


def _text_link(offset: int, length: int, raw: Mapping[str, Any]) -> Any:
    url = raw.get("url")
    return types.MessageEntityTextUrl(offset=offset, length=length, url=str(url)) if url else None


def _custom_emoji(offset: int, length: int, raw: Mapping[str, Any]) -> Any:
    try:
        document_id = int(raw["custom_emoji_id"])
    except (KeyError, TypeError, ValueError):
        return None
    return types.MessageEntityCustomEmoji(offset=offset, length=length, document_id=document_id)


# Bot API entity type → MTProto entity. `text_mention` is deliberately missing: sending one needs
# InputMessageEntityMentionName with an InputUser whose access hash is specific to *this* account
# and unknown to us; a guessed hash makes Telegram refuse the whole message, so the mention is
# dropped and its text stays as plain text.
_ENTITY_BUILDERS: dict[str, _EntityBuilder] = {
    "bold": _plain(types.MessageEntityBold),
    "italic": _plain(types.MessageEntityItalic),
    "underline": _plain(types.MessageEntityUnderline),
    "strikethrough": _plain(types.MessageEntityStrike),
    "spoiler": _plain(types.MessageEntitySpoiler),
    "code": _plain(types.MessageEntityCode),
    "pre": lambda o, n, raw: types.MessageEntityPre(o, n, language=str(raw.get("language") or "")),
    "text_link": _text_link,
    "custom_emoji": _custom_emoji,
    "url": _plain(types.MessageEntityUrl),
    "mention": _plain(types.MessageEntityMention),
    "hashtag": _plain(types.MessageEntityHashtag),
    "cashtag": _plain(types.MessageEntityCashtag),
    "bot_command": _plain(types.MessageEntityBotCommand),
    "email": _plain(types.MessageEntityEmail),
    "phone_number": _plain(types.MessageEntityPhone),
    "blockquote": _plain(types.MessageEntityBlockquote),
    "expandable_blockquote": lambda o, n, _raw: types.MessageEntityBlockquote(o, n, collapsed=True),
}


def to_tl_entities(entities: Iterable[Mapping[str, Any]] | None) -> list[Any]:
    """Bot-API style entity dicts → Telethon TL entities.

    Both APIs count offsets and lengths in UTF-16 code units, so they pass through unchanged.
    Unknown types and malformed rows are dropped rather than failing the whole send.
    """
    result: list[Any] = []
    for raw in entities or ():
        offset, length = raw.get("offset"), raw.get("length")
        if type(offset) is not int or type(length) is not int or offset < 0 or length <= 0:
            continue
        builder = _ENTITY_BUILDERS.get(str(raw.get("type")))
        entity = builder(offset, length, raw) if builder is not None else None
        if entity is not None:
            result.append(entity)
    return result


def input_peer(peer: Peer) -> Any:
    """Address a group from stored ids alone, so the worker never has to list dialogs."""
    real_id, peer_type = utils.resolve_id(peer.chat_id)
    if peer_type is types.PeerChat and peer.chat_id < 0:
        return types.InputPeerChat(chat_id=real_id)
    if peer_type is types.PeerChannel and peer.access_hash is not None:
        return types.InputPeerChannel(channel_id=real_id, access_hash=peer.access_hash)
    # Our data, not Telegram's, is wrong here; the nearest Telegram name keeps the classifier simple.
    raise GatewayError("PEER_ID_INVALID", detail=f"cannot address {peer.kind} {peer.chat_id} from stored ids")


def _reply_to(peer: Peer) -> Any:
    if peer.topic_id is None or peer.topic_id == _GENERAL_TOPIC_ID:
        return None
    return types.InputReplyToMessage(reply_to_msg_id=peer.topic_id, top_msg_id=peer.topic_id)


def _int64(value: int) -> int:
    # random_id is a signed 64-bit field; folding keeps any caller-derived key valid and deterministic.
    return (value + 2**63) % 2**64 - 2**63


def _updates_of(result: Any) -> list[Any]:
    if isinstance(result, types.UpdateShort):
        return [result.update]
    return list(getattr(result, "updates", None) or [])


def sent_message_id(result: Any, random_id: int) -> int:
    """The id of the message a sendMessage/sendMedia result reports (0 if it reports none)."""
    if isinstance(result, types.UpdateShortSentMessage):
        return int(result.id)
    updates = _updates_of(result)
    for update in updates:
        if isinstance(update, types.UpdateMessageID) and update.random_id == random_id:
            return int(update.id)
    for update in updates:
        if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
            return int(update.message.id)
    return 0


def stored_media_handle(result: Any) -> str | None:
    """The handle of the photo/document a sent message carries, as Telegram stored it (id, access
    hash, file reference): unlike an upload it does not expire with the upload, so every later send
    of the cycle, in any job, references it. None when the answer does not show the message."""
    for update in _updates_of(result):
        if isinstance(update, types.UpdateNewMessage | types.UpdateNewChannelMessage):
            media = getattr(update.message, "media", None)
            if isinstance(media, types.MessageMediaPhoto) and isinstance(media.photo, types.Photo):
                return _encode_stored("photo", media.photo)
            if isinstance(media, types.MessageMediaDocument) and isinstance(media.document, types.Document):
                return _encode_stored("document", media.document)
    return None


def _encode_stored(kind: Literal["photo", "document"], item: Any) -> str:
    return json.dumps(
        {
            "v": _HANDLE_VERSION,
            "stored": kind,
            "id": str(item.id),  # int64s as strings: they survive any JSON consumer
            "access_hash": str(item.access_hash),
            "file_reference": bytes(item.file_reference or b"").hex(),
        },
        separators=(",", ":"),
    )


def _same_stored_media(handle: str, other: str) -> bool:
    try:
        a, b = json.loads(handle), json.loads(other)
    except ValueError:
        return False
    return bool(a.get("stored")) and (a.get("stored"), a.get("id")) == (b.get("stored"), b.get("id"))


def input_media(handle: str, kind: Literal["photo", "video"]) -> Any:
    """The InputMedia a handle stands for: a stored photo/document (`stored_media_handle`) or an
    upload (`encode_media_handle`). An unreadable handle is MEDIA_HANDLE_INVALID (upload again)."""
    try:
        data = json.loads(handle)
        stored = data.get("stored") if isinstance(data, dict) else None
        if stored is not None:
            file_id, access_hash = int(data["id"]), int(data["access_hash"])
            reference = bytes.fromhex(str(data["file_reference"]))
            if stored == "photo":
                return types.InputMediaPhoto(id=types.InputPhoto(file_id, access_hash, reference))
            if stored == "document":
                return types.InputMediaDocument(id=types.InputDocument(file_id, access_hash, reference))
            raise ValueError(stored)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise GatewayError("MEDIA_HANDLE_INVALID", detail=type(exc).__name__) from None
    return _uploaded_media(handle, kind)


def encode_media_handle(file: Any, mime_type: str) -> str:
    """Serialise an uploaded InputFile/InputFileBig so a later send of the same account can use it."""
    big = isinstance(file, types.InputFileBig)
    return json.dumps(
        {
            "v": _HANDLE_VERSION,
            "id": str(file.id),  # int64: a string survives any JSON consumer
            "parts": file.parts,
            "name": file.name,
            "md5_checksum": "" if big else file.md5_checksum,
            "big": big,
            "mime_type": mime_type,
        },
        separators=(",", ":"),
    )


def decode_media_handle(handle: str) -> tuple[Any, str]:
    """The InputFile/InputFileBig and mime type stored in a handle from `encode_media_handle`."""
    try:
        data = json.loads(handle)
        file_id, parts, name = int(data["id"]), int(data["parts"]), str(data["name"])
        mime_type = str(data.get("mime_type") or "application/octet-stream")
        if data.get("big"):
            return types.InputFileBig(id=file_id, parts=parts, name=name), mime_type
        md5 = str(data["md5_checksum"])
        return types.InputFile(id=file_id, parts=parts, name=name, md5_checksum=md5), mime_type
    except (ValueError, TypeError, KeyError) as exc:
        raise GatewayError("MEDIA_HANDLE_INVALID", detail=type(exc).__name__) from None


def _uploaded_media(handle: str, kind: Literal["photo", "video"]) -> Any:
    file, mime_type = decode_media_handle(handle)
    if kind == "photo":
        return types.InputMediaUploadedPhoto(file=file)
    attributes = [
        # Dimensions and duration are unknown without probing the file; 0 lets clients read them
        # from the stream, and supports_streaming lets them play before the download ends.
        types.DocumentAttributeVideo(duration=0, w=0, h=0, supports_streaming=True),
        types.DocumentAttributeFilename(file_name=file.name),
    ]
    return types.InputMediaUploadedDocument(file=file, mime_type=mime_type, attributes=attributes)


async def _disconnect_quietly(client: TelegramClient) -> None:
    try:
        await client.disconnect()
    except Exception as exc:  # closing must never hide the error that got us here
        log.debug("telethon disconnect failed: %s", type(exc).__name__)


async def _require_authorised(client: TelegramClient) -> None:
    # Not is_user_authorized(): it swallows every RPC error, so a flood wait or a Telegram outage
    # would look like a revoked session. get_me() returns None only on a 401.
    if await client.get_me(input_peer=True) is None:
        raise GatewayError("AUTH_KEY_UNREGISTERED", detail="session is not authorised")


# ---- the gateway --------------------------------------------------------------------------------


class TelethonGateway:
    def __init__(
        self,
        api_id: int,
        api_hash: str,
        dc: int | None = None,
        dc_address: str | None = None,
        dc_port: int = 443,
        public_key_pem: str | None = None,
        request_timeout_s: float = 20.0,
    ) -> None:
        if (dc is None) != (dc_address is None):
            raise ValueError("dc and dc_address must be given together")
        self._api_id = api_id
        # Telethon bounds its connects but never a request's answer: a hung one would hold its batch
        # past the deliveries' lease (REQUEST_TIMEOUT_S, docs/runtime.md).
        self.request_timeout_s = request_timeout_s
        self._api_hash = api_hash
        self._dc = dc
        self._dc_address = dc_address
        self._dc_port = dc_port
        if public_key_pem and public_key_pem not in _added_public_keys:
            rsa.add_key(public_key_pem, old=False)  # test servers sign with their own key
            _added_public_keys.add(public_key_pem)

    def _client(self, session: str | None, **options: Any) -> TelegramClient:
        try:
            string_session = StringSession(session or None)
        except (ValueError, struct.error):
            # A stored session we cannot read is as dead as a revoked one; never echo the string.
            raise GatewayError("AUTH_KEY_UNREGISTERED", detail="session string unreadable") from None
        if not session and self._dc is not None:
            string_session.set_dc(self._dc, self._dc_address, self._dc_port)
        options.setdefault("flood_sleep_threshold", 0)  # waits are reported, never slept through
        return TelegramClient(
            string_session,
            self._api_id,
            self._api_hash,
            receive_updates=False,  # exists in 1.39 and later; nothing here consumes updates
            raise_last_call_error=True,  # else exhausted retries surface as a bare ValueError
            device_model="tgcast",  # what the user sees in Telegram's list of active sessions
            **options,
        )

    @asynccontextmanager
    async def _connected(self, session: str | None, **options: Any) -> AsyncIterator[TelegramClient]:
        client = self._client(session, **options)
        try:
            await client.connect()
            yield client
        except GatewayError:
            raise
        except Exception as exc:
            raise to_gateway_error(exc) from exc
        finally:
            await _disconnect_quietly(client)

    # login ---------------------------------------------------------------------------------------

    async def send_code(self, phone: str) -> CodeSent:
        async with self._connected(None) as client:
            sent = await client.send_code_request(phone)
            return CodeSent(phone_code_hash=sent.phone_code_hash, temp_session=client.session.save())

    async def sign_in(
        self, temp_session: str, phone: str, code: str, phone_code_hash: str
    ) -> SignedIn | PasswordNeeded:
        async with self._connected(temp_session) as client:
            try:
                user = await client.sign_in(phone=phone, code=code, phone_code_hash=phone_code_hash)
            except SessionPasswordNeededError:
                return PasswordNeeded(temp_session=client.session.save(), hint=await _password_hint(client))
            return _signed_in(client, user, phone)

    async def check_password(self, temp_session: str, phone: str, password: str) -> SignedIn:
        async with self._connected(temp_session) as client:
            user = await client.sign_in(password=password)
            return _signed_in(client, user, phone)

    async def discard_login(self, temp_session: str) -> None:
        # Nothing to undo at Telegram: the half-finished key is not authorised, Telegram drops unused
        # keys on its own, and a network round trip here would only slow down the user's cancel.
        return None

    async def log_out(self, session: str) -> None:
        try:
            async with self._connected(session) as client:
                await client.log_out()  # returns False (no raise) on any RPC error
        except GatewayError as err:
            # "Where possible": a session that is already dead at Telegram is logged out enough.
            if err.code in {"NETWORK", "TIMEOUT", "RPC_CALL_FAIL"} or err.code.startswith("FLOOD"):
                raise

    async def identify(self, session: str) -> int:
        async with self._connected(session) as client:
            me = await client.get_me(input_peer=True)
            if me is None:
                raise GatewayError("AUTH_KEY_UNREGISTERED", detail="session is not authorised")
            return int(me.user_id)

    # groups --------------------------------------------------------------------------------------

    # The listing runs inside a webhook request, so it is bounded: at most this many dialogs (the most
    # recent first, 100 per request to Telegram), and a flood wait is never slept through
    # (flood_sleep_threshold stays 0): it leaves as GatewayError FLOOD_WAIT_X and the user is told
    # how long to wait.
    MAX_DIALOGS = 2000

    async def list_groups(self, session: str) -> Sequence[GroupInfo]:
        async with self._connected(session) as client:
            await _require_authorised(client)
            groups: dict[int, GroupInfo] = {}
            async for dialog in client.iter_dialogs(limit=self.MAX_DIALOGS):
                entity = dialog.entity
                kind = classify_dialog_entity(entity)
                if kind is None:
                    continue
                chat_id = utils.get_peer_id(entity)
                access_hash = entity.access_hash if isinstance(entity, types.Channel) else None
                groups.setdefault(chat_id, GroupInfo(chat_id, entity.title or "", kind, access_hash))
            return list(groups.values())

    # sending -------------------------------------------------------------------------------------

    def connect(self, session: str) -> TelethonSender:
        return TelethonSender(self, session)


async def _password_hint(client: TelegramClient) -> str | None:
    try:
        password = await client(functions.account.GetPasswordRequest())
    except Exception:  # the hint is a courtesy; its failure must not block the password step
        return None
    return password.hint or None


def _signed_in(client: TelegramClient, user: Any, phone: str) -> SignedIn:
    if not isinstance(user, types.User):
        raise GatewayError("UNKNOWN", detail=f"sign-in returned {type(user).__name__}")
    name = " ".join(p for p in (user.first_name, user.last_name) if p)
    return SignedIn(session=client.session.save(), tg_user_id=user.id, phone=phone, name=name)


class TelethonSender:
    """One Telethon connection of an account, kept open across many jobs (`userbot.sender_cache`).

    Every wait and retry is the worker's: Telethon neither sleeps through a flood wait nor re-sends
    a request, so each send is one request and its error goes straight to the delivery classifier.
    """

    def __init__(self, gateway: TelethonGateway, session: str) -> None:
        self._gateway = gateway
        self._session = session
        self._client: TelegramClient | None = None
        # upload handle → the handle of the photo/document Telegram stored on its first send, so a
        # caller that sends the upload's handle again still references the stored media. Bounded: the
        # connection lives as long as the account is served, and every media cycle adds entries,
        # while only the running cycle's are ever looked up (least recently used dropped first).
        self._stored_media: OrderedDict[str, str] = OrderedDict()

    async def __aenter__(self) -> TelethonSender:
        # request_retries counts attempts after the first (Telethon's `retry_range`): 0 is exactly
        # one. More would re-send every 5xx after a 2 s sleep each: RANDOM_ID_DUPLICATE (a 500) would
        # reach the classifier only after the last, and each 500 the worker counts against
        # MAX_RETRIES would have been tried several times already. (Telethon still pauses 2 s after
        # a 5xx before raising it; on this loop that holds up one account, never the process.)
        # A DC migration is no reason for more: an authorised session is used on its own DC, and
        # Telethon's switch to another drops the authorisation anyway.
        client = self._gateway._client(self._session, request_retries=0)
        ready = False
        try:
            # No authorisation probe: this connection serves many jobs, and a dead session shows on
            # the first send as AUTH_KEY_UNREGISTERED, SESSION_REVOKED, … which the classifier
            # already treats as a revoked account (Telethon's connect() asks get_me() itself and
            # keeps quiet about a 401).
            await client.connect()
            ready = True
        except GatewayError:
            raise
        except Exception as exc:
            raise to_gateway_error(exc) from exc
        finally:
            if not ready:
                await _disconnect_quietly(client)
        self._client = client
        return self

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _disconnect_quietly(client)

    def _live_client(self) -> TelegramClient:
        if self._client is None:
            raise RuntimeError("use the connection inside `async with`")
        return self._client

    async def _invoke(self, request: Any) -> Any:
        client = self._live_client()
        try:
            async with asyncio.timeout(self._gateway.request_timeout_s):
                return await client(request)
        except TimeoutError:
            # Sent or not, unknown: a TIMEOUT is retried with the same random_id, and breaks the
            # connection (userbot/sender_cache.py), so the next batch connects afresh.
            raise GatewayError("TIMEOUT", detail="no answer in time") from None
        except Exception as exc:
            raise to_gateway_error(exc) from exc

    async def _send(self, request: Any) -> tuple[Sent, Any]:
        try:
            result = await self._invoke(request)
        except GatewayError as err:
            if err.code == "RANDOM_ID_DUPLICATE":  # sent by an earlier attempt: Telegram de-duplicated it
                return Sent(message_id=0, duplicate=True), None
            raise
        return Sent(message_id=sent_message_id(result, request.random_id)), result

    async def last_message_id(self, peer: Peer) -> int | None:
        target = input_peer(peer)
        history = dict(offset_id=0, offset_date=None, add_offset=0, limit=1, max_id=0, min_id=0, hash=0)
        if peer.topic_id is not None and peer.topic_id != _GENERAL_TOPIC_ID:
            request: Any = functions.messages.GetRepliesRequest(peer=target, msg_id=peer.topic_id, **history)
        else:
            request = functions.messages.GetHistoryRequest(peer=target, **history)
        result = await self._invoke(request)
        for message in getattr(result, "messages", None) or []:
            if not isinstance(message, types.MessageEmpty):
                return int(message.id)
        return None

    async def find_own_post(self, peer: Peer, since: datetime, text: str) -> int | None:
        target = input_peer(peer)
        history = dict(offset_id=0, offset_date=None, add_offset=0, limit=HISTORY_PAGE, max_id=0, min_id=0, hash=0)
        if peer.topic_id is not None and peer.topic_id != _GENERAL_TOPIC_ID:
            request: Any = functions.messages.GetRepliesRequest(peer=target, msg_id=peer.topic_id, **history)
        else:
            request = functions.messages.GetHistoryRequest(peer=target, **history)
        result = await self._invoke(request)
        messages = [m for m in getattr(result, "messages", None) or [] if isinstance(m, types.Message)]
        return own_post_in(
            [(int(m.id), bool(m.out), m.date, m.message or "") for m in messages], since, text,
            whole_history=len(getattr(result, "messages", None) or []) < HISTORY_PAGE)

    async def delete_message(self, peer: Peer, message_id: int) -> bool:
        target = input_peer(peer)
        if isinstance(target, types.InputPeerChannel):
            request: Any = functions.channels.DeleteMessagesRequest(
                channel=types.InputChannel(target.channel_id, target.access_hash), id=[message_id])
        else:
            request = functions.messages.DeleteMessagesRequest(id=[message_id], revoke=True)
        result = await self._invoke(request)
        return bool(getattr(result, "pts_count", 0))  # 0: nothing was there to delete

    async def send_text(self, peer: Peer, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent:
        request = functions.messages.SendMessageRequest(
            peer=input_peer(peer),
            message=text,
            entities=to_tl_entities(entities) or None,
            random_id=_int64(random_id),
            no_webpage=False,
            reply_to=_reply_to(peer),
        )
        sent, _ = await self._send(request)
        return sent

    async def upload_media(self, media: OutgoingMedia) -> str:
        client = self._live_client()
        parts = max(1, -(-len(media.data) // _UPLOAD_PART))
        try:
            # Telethon uploads in sequential parts of at most 512 KiB: the upload gets the request
            # timeout for every 512 KiB.
            async with asyncio.timeout(self._gateway.request_timeout_s * parts):
                file = await client.upload_file(media.data, file_name=media.file_name)
        except TimeoutError:
            raise GatewayError("TIMEOUT", detail="upload not answered in time") from None
        except Exception as exc:
            raise to_gateway_error(exc) from exc
        return encode_media_handle(file, media.mime_type)

    async def send_media(
        self,
        peer: Peer,
        media_handle: str,
        kind: Literal["photo", "video"],
        caption: str,
        entities: list[dict[str, Any]],
        random_id: int,
    ) -> Sent:
        stored_key = f"{kind}:{media_handle}"
        handle = self._stored_media.get(stored_key, media_handle)
        if stored_key in self._stored_media:
            self._stored_media.move_to_end(stored_key)
        request = functions.messages.SendMediaRequest(
            peer=input_peer(peer),
            media=input_media(handle, kind),
            message=caption,
            entities=to_tl_entities(entities) or None,
            random_id=_int64(random_id),
            reply_to=_reply_to(peer),
        )
        sent, result = await self._send(request)
        stored = stored_media_handle(result) if result is not None else None
        if stored is None:
            return sent
        if _same_stored_media(handle, stored):
            # The same photo/document again: keep the handle the caller has, so it sees no change
            # (and writes nothing) on every send; an expired reference is met by a re-upload.
            stored = handle
        self._stored_media[stored_key] = stored
        self._stored_media.move_to_end(stored_key)
        while len(self._stored_media) > STORED_MEDIA_MAX:
            self._stored_media.popitem(last=False)
        return replace(sent, media_handle=stored)
