"""Offline tests of `userbot.telethon_gateway`: the pure TL translations, and the gateway/sender
flows driven through a stand-in for `TelegramClient` (no network, no DB, no Redis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import rsa as rsa_lib
from telethon import errors
from telethon.crypto import rsa as tl_rsa
from telethon.tl import functions, types

from userbot import telethon_gateway as tg
from userbot.gateway import (
    GatewayError,
    GroupInfo,
    GroupKind,
    OutgoingMedia,
    PasswordNeeded,
    Peer,
    Sent,
    SignedIn,
)
from userbot.telethon_gateway import (
    TelethonGateway,
    classify_dialog_entity,
    decode_media_handle,
    encode_media_handle,
    input_peer,
    sent_message_id,
    to_tl_entities,
)

# ---- classify_dialog_entity ----------------------------------------------------------------------

BAN_SEND = types.ChatBannedRights(until_date=None, send_messages=True)
BAN_MEDIA = types.ChatBannedRights(until_date=None, send_media=True)
KICKED = types.ChatBannedRights(until_date=None, view_messages=True)
ADMIN = types.ChatAdminRights(delete_messages=True)
POSTER = types.ChatAdminRights(post_messages=True)


def chat(**kw: Any) -> types.Chat:
    return types.Chat(
        id=123, title="basic", photo=types.ChatPhotoEmpty(), participants_count=3, date=None, version=1, **kw
    )


def channel(**kw: Any) -> types.Channel:
    kw.setdefault("access_hash", 987654321)
    return types.Channel(id=1234567890, title="chan", photo=types.ChatPhotoEmpty(), date=None, **kw)


CLASSIFY_ROWS = [
    ("basic group", chat(), "group"),
    ("basic group, creator", chat(creator=True), "group"),
    ("basic group left", chat(left=True), None),
    ("basic group deactivated", chat(deactivated=True), None),
    ("basic group migrated", chat(migrated_to=types.InputChannel(channel_id=5, access_hash=6)), None),
    ("basic group, sending banned by default", chat(default_banned_rights=BAN_SEND), None),
    ("basic group, media banned by default", chat(default_banned_rights=BAN_MEDIA), "group"),
    (
        "basic group, banned by default but admin",
        chat(default_banned_rights=BAN_SEND, admin_rights=ADMIN),
        "group",
    ),
    ("kicked from basic group", types.ChatForbidden(id=123, title="gone"), None),
    ("supergroup", channel(megagroup=True), "supergroup"),
    ("forum", channel(megagroup=True, forum=True), "forum"),
    ("supergroup left", channel(megagroup=True, left=True), None),
    ("supergroup, sending banned by default", channel(megagroup=True, default_banned_rights=BAN_SEND), None),
    (
        "forum, sending banned by default",
        channel(megagroup=True, forum=True, default_banned_rights=BAN_SEND),
        None,
    ),
    (
        "supergroup, banned by default but admin",
        channel(megagroup=True, default_banned_rights=BAN_SEND, admin_rights=ADMIN),
        "supergroup",
    ),
    (
        "supergroup, banned by default but creator",
        channel(megagroup=True, default_banned_rights=BAN_SEND, creator=True),
        "supergroup",
    ),
    ("supergroup, own rights ban sending", channel(megagroup=True, banned_rights=BAN_SEND), None),
    ("supergroup, own rights kicked", channel(megagroup=True, banned_rights=KICKED), None),
    ("supergroup, own rights ban media only", channel(megagroup=True, banned_rights=BAN_MEDIA), "supergroup"),
    ("gigagroup, member", channel(megagroup=True, gigagroup=True), None),
    ("gigagroup, admin", channel(megagroup=True, gigagroup=True, admin_rights=ADMIN), "supergroup"),
    ("min channel", channel(megagroup=True, min=True), None),
    ("banned from channel", types.ChannelForbidden(id=1, access_hash=2, title="x", megagroup=True), None),
    ("channel, subscriber", channel(broadcast=True), None),
    ("channel, admin without post rights", channel(broadcast=True, admin_rights=ADMIN), None),
    ("channel, admin with post rights", channel(broadcast=True, admin_rights=POSTER), "channel"),
    ("channel, creator", channel(broadcast=True, creator=True), "channel"),
    ("channel left", channel(broadcast=True, left=True, admin_rights=POSTER), None),
    ("user", types.User(id=42), None),
    ("not a TL object", object(), None),
]


@pytest.mark.parametrize(
    ("entity", "kind"), [r[1:] for r in CLASSIFY_ROWS], ids=[r[0] for r in CLASSIFY_ROWS]
)
def test_classify_dialog_entity(entity: object, kind: str | None) -> None:
    assert classify_dialog_entity(entity) == kind


# ---- to_tl_entities ------------------------------------------------------------------------------

PLAIN_ENTITY_ROWS = [
    ("bold", types.MessageEntityBold),
    ("italic", types.MessageEntityItalic),
    ("underline", types.MessageEntityUnderline),
    ("strikethrough", types.MessageEntityStrike),
    ("spoiler", types.MessageEntitySpoiler),
    ("code", types.MessageEntityCode),
    ("url", types.MessageEntityUrl),
    ("mention", types.MessageEntityMention),
    ("hashtag", types.MessageEntityHashtag),
    ("cashtag", types.MessageEntityCashtag),
    ("bot_command", types.MessageEntityBotCommand),
    ("email", types.MessageEntityEmail),
    ("phone_number", types.MessageEntityPhone),
    ("blockquote", types.MessageEntityBlockquote),
]


@pytest.mark.parametrize(("kind", "cls"), PLAIN_ENTITY_ROWS, ids=[r[0] for r in PLAIN_ENTITY_ROWS])
def test_plain_entity_types(kind: str, cls: Any) -> None:
    [entity] = to_tl_entities([{"type": kind, "offset": 7, "length": 3}])
    assert type(entity) is cls
    assert (entity.offset, entity.length) == (7, 3)


def test_blockquotes_collapse_only_when_expandable() -> None:
    plain, expandable = to_tl_entities(
        [
            {"type": "blockquote", "offset": 0, "length": 2},
            {"type": "expandable_blockquote", "offset": 2, "length": 2},
        ]
    )
    assert not plain.collapsed
    assert isinstance(expandable, types.MessageEntityBlockquote)
    assert expandable.collapsed is True
    assert (expandable.offset, expandable.length) == (2, 2)


def test_pre_keeps_language() -> None:
    with_lang, without = to_tl_entities(
        [
            {"type": "pre", "offset": 0, "length": 5, "language": "python"},
            {"type": "pre", "offset": 5, "length": 1},
        ]
    )
    assert isinstance(with_lang, types.MessageEntityPre)
    assert (with_lang.offset, with_lang.length, with_lang.language) == (0, 5, "python")
    assert without.language == ""


def test_text_link_keeps_url() -> None:
    [link] = to_tl_entities([{"type": "text_link", "offset": 1, "length": 4, "url": "https://example.org/x"}])
    assert isinstance(link, types.MessageEntityTextUrl)
    assert (link.offset, link.length, link.url) == (1, 4, "https://example.org/x")


def test_custom_emoji_id_becomes_document_id() -> None:
    [emoji] = to_tl_entities(
        [{"type": "custom_emoji", "offset": 0, "length": 2, "custom_emoji_id": "5368324170671202286"}]
    )
    assert isinstance(emoji, types.MessageEntityCustomEmoji)
    assert (emoji.offset, emoji.length, emoji.document_id) == (0, 2, 5368324170671202286)


def test_offsets_are_utf16_units_and_pass_through() -> None:
    # "🙂 hi" : the emoji is 2 UTF-16 units, so "hi" starts at 3 in both APIs.
    [bold] = to_tl_entities([{"type": "bold", "offset": 3, "length": 2}])
    assert (bold.offset, bold.length) == (3, 2)


def test_text_mention_unknown_and_malformed_entities_are_dropped() -> None:
    dropped: list[dict[str, Any]] = [
        {
            "type": "text_mention",
            "offset": 0,
            "length": 3,
            "user": {"id": 42, "is_bot": False, "first_name": "A"},
        },
        {"type": "date_time", "offset": 0, "length": 3},
        {"type": "bold", "offset": -1, "length": 3},
        {"type": "bold", "offset": 0, "length": 0},
        {"type": "bold", "offset": "0", "length": 3},
        {"type": "bold", "offset": True, "length": 3},
        {"type": "text_link", "offset": 0, "length": 3},
        {"type": "custom_emoji", "offset": 0, "length": 2, "custom_emoji_id": "not-a-number"},
        {"offset": 0, "length": 1},
    ]
    assert to_tl_entities(dropped) == []
    assert to_tl_entities(None) == []


def test_entity_order_is_kept() -> None:
    result = to_tl_entities(
        [{"type": "italic", "offset": 4, "length": 1}, {"type": "bold", "offset": 0, "length": 9}]
    )
    assert [type(e) for e in result] == [types.MessageEntityItalic, types.MessageEntityBold]


# ---- input_peer, message ids, media handles -----------------------------------------------------


def test_input_peer_for_each_kind() -> None:
    assert input_peer(Peer(chat_id=-123, kind="group")) == types.InputPeerChat(chat_id=123)
    kinds: tuple[GroupKind, ...] = ("supergroup", "forum", "channel")
    for kind in kinds:
        peer = Peer(chat_id=-1001234567890, kind=kind, access_hash=77)
        assert input_peer(peer) == types.InputPeerChannel(channel_id=1234567890, access_hash=77)


@pytest.mark.parametrize(
    "peer",
    [Peer(chat_id=-1001234567890, kind="supergroup"), Peer(chat_id=42, kind="group")],
    ids=["channel without access hash", "user id"],
)
def test_input_peer_refuses_what_it_cannot_address(peer: Peer) -> None:
    with pytest.raises(GatewayError) as info:
        input_peer(peer)
    assert info.value.code == "PEER_ID_INVALID"


def _channel_message(msg_id: int, media: Any = None) -> types.UpdateNewChannelMessage:
    message = types.Message(id=msg_id, peer_id=types.PeerChannel(1), date=None, message="hi", media=media)
    return types.UpdateNewChannelMessage(message=message, pts=1, pts_count=1)


def _updates(*updates: Any) -> types.Updates:
    return types.Updates(updates=list(updates), users=[], chats=[], date=None, seq=0)


def test_sent_message_id_shapes() -> None:
    short = types.UpdateShortSentMessage(id=5, pts=1, pts_count=1, date=None)
    assert sent_message_id(short, 1) == 5
    by_random_id = _updates(
        types.UpdateMessageID(id=9, random_id=111), types.UpdateMessageID(id=10, random_id=222)
    )
    assert sent_message_id(by_random_id, 222) == 10
    assert sent_message_id(_updates(_channel_message(77)), 1) == 77
    basic = types.UpdateNewMessage(
        message=types.Message(id=12, peer_id=types.PeerChat(1), date=None, message="x"), pts=1, pts_count=1
    )
    assert sent_message_id(types.UpdateShort(update=basic, date=None), 1) == 12
    assert sent_message_id(_updates(), 1) == 0


def test_media_handle_round_trip() -> None:
    small = types.InputFile(id=-(2**62), parts=3, name="a.jpg", md5_checksum="abc")
    file, mime = decode_media_handle(encode_media_handle(small, "image/jpeg"))
    assert (file, mime) == (small, "image/jpeg")
    big = types.InputFileBig(id=2**62, parts=40, name="v.mp4")
    handle = encode_media_handle(big, "video/mp4")
    assert json.loads(handle)["big"] is True
    assert decode_media_handle(handle) == (big, "video/mp4")


@pytest.mark.parametrize("handle", ["", "{}", "[1]", '{"id": "x", "parts": 1, "name": "n"}'])
def test_bad_media_handle(handle: str) -> None:
    with pytest.raises(GatewayError) as info:
        decode_media_handle(handle)
    assert info.value.code == "MEDIA_HANDLE_INVALID"


# ---- flows through a stand-in TelegramClient ----------------------------------------------------


class FakeClient:
    """Records what the gateway asks of Telethon; `behaviour` scripts the answers."""

    behaviour: ClassVar[dict[str, Any]] = {}
    instances: ClassVar[list[FakeClient]] = []

    def __init__(self, session: Any, api_id: int, api_hash: str, **options: Any) -> None:
        self.session, self.options = session, options
        self.requests: list[Any] = []
        self.disconnected = False
        FakeClient.instances.append(self)

    def _answer(self, key: str, default: Any = None) -> Any:
        value = self.behaviour.get(key, default)
        if isinstance(value, BaseException):
            raise value
        return value(self) if callable(value) else value

    async def connect(self) -> None:
        self._answer("connect")

    async def disconnect(self) -> None:
        self.disconnected = True

    async def get_me(self, input_peer: bool = False) -> Any:
        return self._answer("me", types.InputPeerUser(user_id=1, access_hash=2))

    async def send_code_request(self, phone: str) -> Any:
        return self._answer("send_code", SimpleNamespace(phone_code_hash="hash-1"))

    async def sign_in(
        self, phone: Any = None, code: Any = None, *, password: Any = None, phone_code_hash: Any = None
    ) -> Any:
        self.requests.append(("sign_in", phone, code, password, phone_code_hash))
        return self._answer("sign_in", types.User(id=4242))

    async def log_out(self) -> bool:
        return self._answer("log_out", True)

    async def iter_dialogs(self, limit: int | None = None) -> AsyncIterator[Any]:
        self.requests.append(("iter_dialogs", limit))
        for entity in self.behaviour.get("dialogs", [])[:limit]:
            yield SimpleNamespace(entity=entity)

    async def upload_file(self, data: bytes, *, file_name: str) -> Any:
        return types.InputFile(id=99, parts=1, name=file_name, md5_checksum="")

    async def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        if isinstance(request, functions.account.GetPasswordRequest):
            return SimpleNamespace(hint="my cat")
        return self._answer(
            "send", lambda c: _updates(types.UpdateMessageID(id=321, random_id=request.random_id))
        )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.behaviour, FakeClient.instances = {}, []
    monkeypatch.setattr(tg, "TelegramClient", FakeClient)
    return FakeClient


GW = TelethonGateway(api_id=1, api_hash="0" * 32)


async def test_send_code_and_sign_in(fake: type[FakeClient]) -> None:
    sent = await GW.send_code("+998901234567")
    assert sent.phone_code_hash == "hash-1"
    result = await GW.sign_in(sent.temp_session, "+998901234567", "12345", "hash-1")
    assert isinstance(result, SignedIn)
    assert (result.tg_user_id, result.phone) == (4242, "+998901234567")
    assert fake.instances[-1].requests[0] == ("sign_in", "+998901234567", "12345", None, "hash-1")
    assert all(c.disconnected for c in fake.instances)
    assert all(c.options["flood_sleep_threshold"] == 0 for c in fake.instances)


async def test_sign_in_needs_password_then_checks_it(fake: type[FakeClient]) -> None:
    fake.behaviour["sign_in"] = errors.SessionPasswordNeededError(request=None)
    result = await GW.sign_in("", "+998901234567", "12345", "hash-1")
    assert isinstance(result, PasswordNeeded)
    assert result.hint == "my cat"
    fake.behaviour["sign_in"] = types.User(id=7)
    signed = await GW.check_password(result.temp_session, "+998901234567", "secret")
    assert signed.tg_user_id == 7
    assert fake.instances[-1].requests[-1] == ("sign_in", None, None, "secret", None)


async def test_login_errors_are_gateway_errors_and_disconnect(fake: type[FakeClient]) -> None:
    fake.behaviour["sign_in"] = errors.PhoneCodeInvalidError(request=None)
    with pytest.raises(GatewayError) as info:
        await GW.sign_in("", "+998901234567", "00000", "hash-1")
    assert info.value.code == "PHONE_CODE_INVALID"
    assert fake.instances[-1].disconnected


async def test_unreadable_session_is_a_dead_session(fake: type[FakeClient]) -> None:
    with pytest.raises(GatewayError) as info:
        await GW.list_groups("1not-a-session")
    assert info.value.code == "AUTH_KEY_UNREGISTERED"
    assert "not-a-session" not in str(info.value) + info.value.detail


async def test_list_groups_keeps_writable_and_dedupes(fake: type[FakeClient]) -> None:
    fake.behaviour["dialogs"] = [
        chat(),
        channel(megagroup=True, forum=True),
        channel(megagroup=True, forum=True),  # the same forum twice (pinned + folder)
        channel(broadcast=True),
        chat(left=True),
    ]
    groups = await GW.list_groups("")
    assert groups == [
        GroupInfo(chat_id=-123, title="basic", kind="group", access_hash=None),
        GroupInfo(chat_id=-1001234567890, title="chan", kind="forum", access_hash=987654321),
    ]
    [client] = fake.instances
    assert client.requests == [("iter_dialogs", TelethonGateway.MAX_DIALOGS)]  # bounded walk
    assert client.options["flood_sleep_threshold"] == 0  # a flood wait is reported, never slept


async def test_list_groups_of_a_dead_session(fake: type[FakeClient]) -> None:
    fake.behaviour["me"] = None
    with pytest.raises(GatewayError) as info:
        await GW.list_groups("")
    assert info.value.code == "AUTH_KEY_UNREGISTERED"


async def test_log_out_swallows_dead_session_but_not_network(fake: type[FakeClient]) -> None:
    await GW.log_out("")
    fake.behaviour["connect"] = errors.AuthKeyDuplicatedError(request=None)
    await GW.log_out("")
    fake.behaviour["connect"] = ConnectionError("down")
    with pytest.raises(GatewayError) as info:
        await GW.log_out("")
    assert info.value.code == "NETWORK"
    await GW.discard_login("anything")  # never raises, touches nothing


async def test_sender_connects_once_without_updates_or_flood_sleep(fake: type[FakeClient]) -> None:
    async with GW.connect("") as conn:
        sent = await conn.send_text(
            Peer(chat_id=-123, kind="group"), "hello", [{"type": "bold", "offset": 0, "length": 5}], 555
        )
    [client] = fake.instances
    assert client.options["flood_sleep_threshold"] == 0
    assert client.options["request_retries"] == 0  # one attempt: retrying is the worker's
    assert client.options["receive_updates"] is False
    assert client.disconnected
    assert sent == Sent(message_id=321)
    [request] = client.requests
    assert isinstance(request, functions.messages.SendMessageRequest)
    assert request.peer == types.InputPeerChat(chat_id=123)
    assert (request.message, request.random_id, request.no_webpage, request.reply_to) == (
        "hello",
        555,
        False,
        None,
    )
    assert request.entities == [types.MessageEntityBold(offset=0, length=5)]


async def test_sender_does_not_probe_a_session_its_first_send_tells(fake: type[FakeClient]) -> None:
    # The connection outlives a job (userbot.sender_cache), so no get_me per connect: a dead session
    # fails the first send instead, with the code the classifier treats as revoked.
    fake.behaviour["me"] = AssertionError("get_me probe")
    fake.behaviour["send"] = errors.AuthKeyUnregisteredError(request=None)
    with pytest.raises(GatewayError) as info:
        async with GW.connect("") as conn:
            await conn.send_text(Peer(chat_id=-123, kind="group"), "x", [], 1)
    assert info.value.code == "AUTH_KEY_UNREGISTERED"
    assert fake.instances[-1].disconnected


async def test_forum_topics_and_general_topic(fake: type[FakeClient]) -> None:
    forum = Peer(chat_id=-1001234567890, kind="forum", access_hash=5)
    async with GW.connect("") as conn:
        await conn.send_text(forum, "a", [], 1)
        await conn.send_text(Peer(forum.chat_id, "forum", 5, topic_id=1), "b", [], 2)
        await conn.send_text(Peer(forum.chat_id, "forum", 5, topic_id=17), "c", [], 3)
    first, general, topic = fake.instances[-1].requests
    assert first.reply_to is None and general.reply_to is None
    assert topic.reply_to == types.InputReplyToMessage(reply_to_msg_id=17, top_msg_id=17)


async def test_duplicate_random_id_counts_as_sent_and_floods_raise(fake: type[FakeClient]) -> None:
    peer = Peer(chat_id=-123, kind="group")
    async with GW.connect("") as conn:
        fake.behaviour["send"] = errors.RandomIdDuplicateError(request=None)
        assert await conn.send_text(peer, "x", [], 2**64 - 1) == Sent(message_id=0, duplicate=True)
        assert fake.instances[-1].requests[-1].random_id == -1  # folded into int64
        fake.behaviour["send"] = errors.FloodWaitError(request=None, capture=30)
        with pytest.raises(GatewayError) as info:
            await conn.send_text(peer, "x", [], 3)
    assert (info.value.code, info.value.seconds) == ("FLOOD_WAIT_X", 30)


async def test_media_is_uploaded_once_then_reused(fake: type[FakeClient]) -> None:
    photo = types.Photo(id=8, access_hash=9, file_reference=b"r", date=None, sizes=[], dc_id=2)
    fake.behaviour["send"] = _updates(_channel_message(40, types.MessageMediaPhoto(photo=photo)))
    peer = Peer(chat_id=-1001234567890, kind="supergroup", access_hash=5)
    async with GW.connect("") as conn:
        handle = await conn.upload_media(OutgoingMedia("photo", b"\xff\xd8", "p.jpg", "image/jpeg"))
        assert json.loads(handle)["name"] == "p.jpg"
        assert (await conn.send_media(peer, handle, "photo", "cap", [], 1)).message_id == 40
        await conn.send_media(peer, handle, "photo", "cap", [{"type": "italic", "offset": 0, "length": 3}], 2)
    first, second = fake.instances[-1].requests
    assert isinstance(first, functions.messages.SendMediaRequest)
    assert isinstance(first.media, types.InputMediaUploadedPhoto)
    assert first.media.file.name == "p.jpg"
    assert isinstance(second.media, types.InputMediaPhoto)
    assert second.media.id == types.InputPhoto(id=8, access_hash=9, file_reference=b"r")
    assert second.entities == [types.MessageEntityItalic(offset=0, length=3)]


async def test_video_is_sent_as_streamable_document(fake: type[FakeClient]) -> None:
    async with GW.connect("") as conn:
        handle = await conn.upload_media(OutgoingMedia("video", b"\x00", "v.mp4", "video/mp4"))
        await conn.send_media(Peer(chat_id=-123, kind="group"), handle, "video", "", [], 1)
    [request] = fake.instances[-1].requests
    media = request.media
    assert isinstance(media, types.InputMediaUploadedDocument)
    assert media.mime_type == "video/mp4"
    video, filename = media.attributes
    assert isinstance(video, types.DocumentAttributeVideo) and video.supports_streaming
    assert filename == types.DocumentAttributeFilename(file_name="v.mp4")


# ---- construction --------------------------------------------------------------------------------


async def test_test_server_dc_applies_to_new_sessions_only() -> None:
    # async: Telethon 1.39 needs a running event loop to build a client
    gateway = TelethonGateway(1, "h", dc=2, dc_address="149.154.167.40", dc_port=443)
    fresh = gateway._client(None)
    assert (fresh.session.dc_id, fresh.session.server_address, fresh.session.port) == (
        2,
        "149.154.167.40",
        443,
    )
    with pytest.raises(ValueError, match="together"):
        TelethonGateway(1, "h", dc=2)


def test_public_key_is_registered_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(tl_rsa, "add_key", lambda pem, *, old: calls.append(pem))
    pem = rsa_lib.newkeys(512)[0].save_pkcs1().decode()
    TelethonGateway(1, "h", public_key_pem=pem)
    TelethonGateway(1, "h", public_key_pem=pem)
    assert calls == [pem]
