"""The fake Bot API answers real aiogram (form/multipart encoding) and plain JSON clients like Telegram."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaDocument,
    InputMediaPhoto,
    InputMediaVideo,
    KeyboardButton,
    MessageEntity,
    ReplyKeyboardMarkup,
)

from sandbox.botapi import NOT_MODIFIED, FakeBotAPI, FakeBotAPIServer
from tests.harness import sent_to

TOKEN = "123456:TEST"
CHAT = 700_000_123


@pytest.fixture
async def bot(botapi: FakeBotAPI, botapi_server: FakeBotAPIServer) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(botapi_server.base_url))
    bot = Bot(token=TOKEN, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.upper(), callback_data=d)] for d in data]
    )


async def test_get_me_derives_the_bot_from_the_token(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "tgcast_test_bot")


async def test_send_message_records_decoded_params(bot: Bot, botapi: FakeBotAPI) -> None:
    entities = [MessageEntity(type="bold", offset=0, length=5)]
    sent = await bot.send_message(CHAT, "Hello world", entities=entities, reply_markup=keyboard("a", "b"))
    again = await bot.send_message(CHAT, "second")

    assert (sent.message_id, again.message_id) == (1, 2)
    assert sent.chat.id == CHAT and sent.chat.type == "private"
    assert sent.from_user is not None and sent.from_user.id == 123456
    # aiogram models bound to a bot don't compare equal to free ones; compare their data.
    assert [e.model_dump() for e in sent.entities or []] == [e.model_dump() for e in entities]
    assert sent.reply_markup is not None and sent.reply_markup.model_dump() == keyboard("a", "b").model_dump()

    call = botapi.calls_of("sendMessage")[0]
    assert call.token == TOKEN
    assert call.params["chat_id"] == CHAT
    assert call.params["entities"] == [{"type": "bold", "offset": 0, "length": 5}]
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "A", "callback_data": "a"}], [{"text": "B", "callback_data": "b"}]]
    }
    assert [c.params["text"] for c in sent_to(botapi, CHAT)] == ["Hello world", "second"]
    assert [m["text"] for m in botapi.messages(CHAT)] == ["Hello world", "second"]


async def test_reply_keyboard_stays_on_the_screen_but_not_in_the_result(bot: Bot, botapi: FakeBotAPI) -> None:
    markup = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Menu")]], resize_keyboard=True)
    sent = await bot.send_message(CHAT, "pick", reply_markup=markup)
    assert sent.reply_markup is None
    stored = botapi.message(CHAT, sent.message_id)
    assert stored is not None
    assert stored["reply_markup"] == {"keyboard": [[{"text": "Menu"}]], "resize_keyboard": True}


async def test_edits_follow_telegram_rules(bot: Bot, botapi: FakeBotAPI) -> None:
    sent = await bot.send_message(CHAT, "menu", reply_markup=keyboard("x"))

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="menu", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("x")
        )
    assert botapi.last("editMessageText") is not None

    edited = await bot.edit_message_text(
        text="menu", chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("y")
    )
    assert not isinstance(edited, bool) and edited.reply_markup is not None
    assert edited.reply_markup.model_dump() == keyboard("y").model_dump()
    assert botapi.messages(CHAT)[-1]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "y"

    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=CHAT, message_id=999)

    assert await bot.delete_message(CHAT, sent.message_id) is True
    assert botapi.messages(CHAT) == []
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(CHAT, sent.message_id)


async def test_uploaded_photo_can_be_fetched_back(bot: Bot, botapi: FakeBotAPI) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40 + b"\r\n--tail"
    sent = await bot.send_photo(CHAT, BufferedInputFile(data, filename="pic.png"), caption="look")

    assert sent.photo and sent.caption == "look"
    call = botapi.last("sendPhoto")
    assert call is not None and call.params["photo"] == {"filename": "pic.png", "size": len(data)}
    file_id = sent.photo[-1].file_id
    info = await bot.get_file(file_id)
    assert info.file_size == len(data) and info.file_path
    downloaded = await bot.download(file_id)
    assert downloaded is not None and downloaded.read() == data

    # A file_id is reusable, and test-registered files download too.
    resent = await bot.send_photo(CHAT, file_id)
    assert resent.photo and resent.photo[-1].file_id == file_id
    botapi.add_file("registered-id", b"abc")
    registered = await bot.download("registered-id")
    assert registered is not None and registered.read() == b"abc"


async def test_edit_caption_needs_media(bot: Bot) -> None:
    video = await bot.send_video(CHAT, BufferedInputFile(b"mp4", filename="v.mp4"), caption="old")
    assert video.video is not None and video.video.file_size == 3
    edited = await bot.edit_message_caption(chat_id=CHAT, message_id=video.message_id, caption="new")
    assert not isinstance(edited, bool) and edited.caption == "new"
    text = await bot.send_message(CHAT, "plain")
    with pytest.raises(TelegramBadRequest, match="no caption"):
        await bot.edit_message_caption(chat_id=CHAT, message_id=text.message_id, caption="x")


async def test_fail_next_429_carries_retry_after(bot: Bot, botapi: FakeBotAPI) -> None:
    botapi.fail_next("sendMessage", error_code=429, retry_after=2)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == 2
    # Only the next call fails, and the failed attempt is still recorded.
    await bot.send_message(CHAT, "hi")
    assert len(botapi.calls_of("sendMessage")) == 2
    assert [m["text"] for m in botapi.messages(CHAT)] == ["hi"]


async def test_fail_next_can_target_one_chat(bot: Bot, botapi: FakeBotAPI) -> None:
    botapi.fail_next(
        "sendMessage", error_code=400, description="Bad Request: chat not found", chat_id=CHAT + 1
    )
    await bot.send_message(CHAT, "fine")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(CHAT + 1, "nope")


async def test_blocked_chat_is_forbidden(bot: Bot, botapi: FakeBotAPI) -> None:
    botapi.block_chat(CHAT)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.copy_message(CHAT, from_chat_id=-100123, message_id=1)
    await bot.send_message(CHAT + 1, "other chats still work")
    botapi.clear()  # a session-wide server forgets blocks between tests
    await bot.send_message(CHAT, "hi again")


async def test_copy_message_repeats_the_source(bot: Bot, botapi: FakeBotAPI) -> None:
    source = botapi.add_message(-100500, text="post", entities=[{"type": "italic", "offset": 0, "length": 4}])
    copied = await bot.copy_message(CHAT, from_chat_id=-100500, message_id=source)
    assert copied.message_id == 1
    assert botapi.messages(CHAT)[-1]["text"] == "post"
    assert sent_to(botapi, CHAT)[0].method == "copyMessage"


async def test_webhook_settings_are_stored(bot: Bot, botapi: FakeBotAPI) -> None:
    await bot.set_webhook("https://x.test/hook", secret_token="s3cret", allowed_updates=["message"])
    info = await bot.get_webhook_info()
    assert info.url == "https://x.test/hook" and info.allowed_updates == ["message"]
    assert info.max_connections == 40
    hook = botapi.webhook(TOKEN)
    assert hook is not None and hook["secret_token"] == "s3cret"
    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


def test_httpx_json_body(botapi: FakeBotAPI, botapi_server: FakeBotAPIServer) -> None:
    markup = {"inline_keyboard": [[{"text": "Go", "callback_data": "go", "url": None}]]}
    response = httpx.post(
        f"{botapi_server.base_url}/bot{TOKEN}/sendMessage",
        json={"chat_id": -1001234, "text": "json!", "reply_markup": markup},
    )
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["result"]["chat"] == {"id": -1001234, "type": "supergroup", "title": "Chat -1001234"}
    assert body["result"]["reply_markup"] == {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    call = botapi.last("sendMessage")
    assert call is not None and call.params["text"] == "json!"

    # Same content and keyboard again → Telegram's "not modified" error shape.
    edit = httpx.post(
        f"{botapi_server.base_url}/bot{TOKEN}/editMessageText",
        json={
            "chat_id": -1001234,
            "message_id": body["result"]["message_id"],
            "text": "json!",
            "reply_markup": markup,
        },
    )
    assert edit.status_code == 400
    assert edit.json() == {"ok": False, "error_code": 400, "description": NOT_MODIFIED}

    botapi.fail_next("*", error_code=429, retry_after=7)
    limited = httpx.get(f"{botapi_server.base_url}/bot{TOKEN}/getMe")
    assert limited.status_code == 429
    assert limited.json()["parameters"] == {"retry_after": 7}


def test_unknown_methods_answer_true(botapi: FakeBotAPI, botapi_server: FakeBotAPIServer) -> None:
    response = httpx.post(f"{botapi_server.base_url}/bot{TOKEN}/setMyDescription", data={"description": "d"})
    assert response.json() == {"ok": True, "result": True}
    call = botapi.last("setMyDescription")
    assert call is not None and call.params == {"description": "d"}


def test_server_restarts_cleanly() -> None:
    with FakeBotAPIServer() as server:
        url = server.base_url
        assert httpx.get(f"{url}/bot1:x/getMe").json()["result"]["id"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/bot1:x/getMe")


async def test_media_groups_and_media_edits_resolve_attachments(bot: Bot, botapi: FakeBotAPI) -> None:
    album = await bot.send_media_group(
        CHAT,
        [
            InputMediaPhoto(media=BufferedInputFile(b"one", filename="1.jpg"), caption="first"),
            InputMediaVideo(media=BufferedInputFile(b"two!", filename="2.mp4")),
        ],
    )
    assert [bool(m.photo) for m in album] == [True, False] and album[1].video is not None
    assert album[0].media_group_id == album[1].media_group_id
    media = botapi.last("sendMediaGroup")
    assert media is not None and media.params["media"][0]["media"] == {"filename": "1.jpg", "size": 3}

    edited = await bot.edit_message_media(
        InputMediaDocument(media=BufferedInputFile(b"doc", filename="d.txt"), caption="now a doc"),
        chat_id=CHAT,
        message_id=album[0].message_id,
    )
    assert not isinstance(edited, bool) and edited.document is not None and edited.photo is None
    assert edited.document.file_name == "d.txt" and edited.caption == "now a doc"


async def test_chat_and_commands(bot: Bot, botapi: FakeBotAPI) -> None:
    chat = await bot.get_chat(-100777)
    assert (chat.id, chat.type) == (-100777, "supergroup")
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    await bot.send_chat_action(CHAT, "typing")
    assert await bot.answer_callback_query("cb-1", text="done") is True
    answered = botapi.last("answerCallbackQuery")
    assert answered is not None and answered.params == {"callback_query_id": "cb-1", "text": "done"}


def test_classic_multipart_upload(botapi: FakeBotAPI, botapi_server: FakeBotAPIServer) -> None:
    response = httpx.post(
        f"{botapi_server.base_url}/bot{TOKEN}/sendDocument",
        data={"chat_id": str(CHAT), "caption": "report"},
        files={"document": ("report.csv", b"a,b\r\n1,2\r\n", "text/csv")},
    )
    document = response.json()["result"]["document"]
    assert document["file_name"] == "report.csv" and document["file_size"] == 10
    call = botapi.last("sendDocument")
    assert call is not None
    assert call.params == {
        "chat_id": CHAT,
        "caption": "report",
        "document": {"filename": "report.csv", "size": 10},
    }
