"""Capturing the broadcast message: formatting kept exactly, media stored, limits, history de-dup."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from db import configs, messages
from handlers.states import BroadcastStates
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, fsm_state, log_in

WAITING = BroadcastStates.WAITING_BROADCAST_MSG.state
PICKER = ["set_interval:3", "set_interval:5", "set_interval:10", "set_interval:30", "set_interval_custom",
          "cancel_broadcast"]


@pytest.fixture
async def ready(tg: Telegram, net, db, user: TgUser) -> TgUser:
    await allow(db, user)
    await log_in(tg, net, user)
    return user


async def _history(db, owner: int) -> list:
    cur = await db.execute(
        "SELECT id, kind, text, entities, media_id FROM messages WHERE owner_id = %(o)s ORDER BY id", {"o": owner}
    )
    return await cur.fetchall()


async def test_send_message_needs_a_login(tg: Telegram, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "send_message")
    assert "menu.need_login" in tg.toast_keys()


async def test_send_message_asks_and_waits(app, tg: Telegram, ready: TgUser) -> None:
    await tg.press(ready, "send_message")
    assert await fsm_state(app, ready) == WAITING
    screen = tg.screen(ready)
    assert screen.has("message.ask") and "message.current" not in screen.keys
    assert screen.callbacks == ["cancel_broadcast"]


async def test_text_with_entities_is_kept_exactly(app, tg: Telegram, db, ready: TgUser) -> None:
    # Offsets are UTF-16 units: the emoji before "bold" counts 2, so "bold" starts at 3.
    text = "😀 bold italic link spoiler 🔥 custom"
    entities = [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "italic", "offset": 8, "length": 6},
        {"type": "text_link", "offset": 15, "length": 4, "url": "https://example.com/"},
        {"type": "spoiler", "offset": 20, "length": 7},
        {"type": "custom_emoji", "offset": 28, "length": 2, "custom_emoji_id": "5368324170671202286"},
        {"type": "underline", "offset": 31, "length": 6},
    ]
    await tg.press(ready, "send_message")
    await tg.send(ready, text, entities=entities)
    assert await fsm_state(app, ready) is None
    [(mid, kind, stored_text, stored_entities, media_id)] = await _history(db, ready.id)
    assert (kind, stored_text, media_id) == ("text", text, None)
    assert stored_entities == entities
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id == mid
    screen = tg.screen(ready)
    assert screen.has("message.saved") and screen.callbacks == PICKER


async def test_photo_with_caption_is_downloaded_and_stored(tg: Telegram, db, ready: TgUser, botapi) -> None:
    data = b"\xff\xd8\xff\xe0 fake jpeg bytes" * 100
    botapi.add_file("PHOTO-BIG", data)
    caption_entities = [{"type": "bold", "offset": 0, "length": 4}]
    await tg.press(ready, "send_message")
    await tg.send_content(
        ready,
        photo=[{"file_id": "PHOTO-SMALL", "file_unique_id": "s", "width": 90, "height": 90, "file_size": 10},
               {"file_id": "PHOTO-BIG", "file_unique_id": "b", "width": 1280, "height": 720,
                "file_size": len(data)}],
        caption="Sale today", caption_entities=caption_entities,
    )
    [(_mid, kind, text, entities, media_id)] = await _history(db, ready.id)
    assert (kind, text, entities) == ("photo", "Sale today", caption_entities)
    media = await messages.get_media(db, media_id)
    assert media is not None and media.data == data and media.kind == "photo"
    assert media.bot_file_id == "PHOTO-BIG" and media.sha256 == hashlib.sha256(data).hexdigest()
    assert tg.screen(ready).callbacks == PICKER


async def test_video_with_caption(tg: Telegram, db, ready: TgUser, botapi) -> None:
    botapi.add_file("VIDEO-1", b"\x00\x00\x00\x18ftypmp42 video")
    await tg.press(ready, "send_message")
    await tg.send_content(
        ready,
        video={"file_id": "VIDEO-1", "file_unique_id": "v", "width": 640, "height": 360, "duration": 3,
               "mime_type": "video/mp4", "file_name": "ad.mp4", "file_size": 22},
        caption="Watch",
    )
    [(_, kind, text, _, media_id)] = await _history(db, ready.id)
    media = await messages.get_media(db, media_id)
    assert kind == "video" and text == "Watch"
    assert media is not None and media.file_name == "ad.mp4" and media.mime_type == "video/mp4"


async def test_media_over_20_mb_is_refused_before_downloading(app, tg: Telegram, db, ready: TgUser,
                                                              botapi) -> None:
    await tg.press(ready, "send_message")
    await tg.send_content(
        ready,
        video={"file_id": "HUGE", "file_unique_id": "h", "width": 1, "height": 1, "duration": 1,
               "file_size": 20 * 1024 * 1024 + 1},
    )
    assert tg.screen(ready).has("message.media_too_big")
    assert not botapi.calls_of("getFile")
    assert await fsm_state(app, ready) == WAITING
    assert await _history(db, ready.id) == []


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ({"text": "😀" * 2049}, "message.too_long"),  # 2049 characters, 4098 UTF-16 units
        ({"photo": [{"file_id": "P", "file_unique_id": "p", "width": 1, "height": 1, "file_size": 3}],
          "caption": "x" * 1025}, "message.caption_too_long"),
        ({"sticker": {"file_id": "S", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1,
                      "is_animated": False, "is_video": False}}, "message.unsupported"),
        ({"voice": {"file_id": "V", "file_unique_id": "v", "duration": 1}}, "message.unsupported"),
        ({"document": {"file_id": "D", "file_unique_id": "d"}}, "message.unsupported"),
    ],
)
async def test_refused_content_keeps_the_state(app, tg: Telegram, db, ready: TgUser, content, key: str) -> None:
    await tg.press(ready, "send_message")
    await tg.send_content(ready, **content)
    assert tg.screen(ready).has(key)
    assert await fsm_state(app, ready) == WAITING
    assert await _history(db, ready.id) == []


async def test_text_of_exactly_4096_units_is_accepted(tg: Telegram, db, ready: TgUser) -> None:
    await tg.press(ready, "send_message")
    await tg.send(ready, "😀" * 2048)
    assert len(await _history(db, ready.id)) == 1


async def test_identical_message_is_not_appended_twice(tg: Telegram, db, ready: TgUser) -> None:
    for text in ("first ad", "first ad", "second ad", "first ad"):
        await tg.press(ready, "send_message")
        await tg.send(ready, text)
    assert [row[2] for row in await _history(db, ready.id)] == ["first ad", "second ad", "first ad"]
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id == (await _history(db, ready.id))[-1][0]


async def test_current_message_preview_is_shown(tg: Telegram, ready: TgUser) -> None:
    long_text = "A <tag> & " + "x" * 200
    await tg.press(ready, "send_message")
    await tg.send(ready, long_text)
    await tg.press(ready, "send_message")
    screen = tg.screen(ready)
    assert screen.has("message.current", "message.ask")
    assert "A &lt;tag&gt; &amp; " in screen.text and "x" * 69 + "…" in screen.text  # 80 characters in all


ORDER_TEXT = "😀 Fresh bread daily. Pay on delivery, order here"
ORDER_ENTITIES: list[dict[str, Any]] = [
    {"type": "bold", "offset": 3, "length": 11},
    {"type": "italic", "offset": 9, "length": 5},  # inside the bold, ending with it
    {"type": "text_link", "offset": 39, "length": 5, "url": "https://example.com/order?a=1&b=\"2\""},
    {"type": "custom_emoji", "offset": 0, "length": 2, "custom_emoji_id": "5368324170671202286"},
]


def test_as_html_is_what_telegram_parses_back_into_the_same_message() -> None:
    from handlers.message import as_html
    from sandbox.entities import parse_html

    rendered = as_html(ORDER_TEXT, ORDER_ENTITIES)
    assert '<a href="https://example.com/order?a=1&amp;b=&quot;2&quot;">order</a>' in rendered
    text, entities = parse_html(rendered)  # Telegram's HTML rules, as the sandbox applies them
    assert text == ORDER_TEXT
    # Every entity comes back but the custom emoji (a bot may not send one: its stand-in stays).
    assert sorted(entities, key=lambda e: (e["offset"], -e["length"])) == [
        {"type": "bold", "offset": 3, "length": 11}, {"type": "italic", "offset": 9, "length": 5},
        {"type": "text_link", "offset": 39, "length": 5, "url": 'https://example.com/order?a=1&b="2"'}]
    code = as_html("print(1)", [{"type": "pre", "offset": 0, "length": 8, "language": "python"}])
    assert parse_html(code) == ("print(1)", [{"type": "pre", "offset": 0, "length": 8, "language": "python"}])


def test_a_cut_preview_keeps_the_formatting_it_reaches() -> None:
    from handlers.message import as_html
    from sandbox.entities import parse_html

    rendered = as_html("ab\n" + ORDER_TEXT, [{**e, "offset": e["offset"] + 3} for e in ORDER_ENTITIES], 12)
    assert rendered.endswith("…") and "\n" not in rendered
    text, entities = parse_html(rendered)
    assert text == "ab 😀 Fresh…"  # 11 units kept: a newline is a space, the bold is cut where the text is
    assert entities == [{"type": "bold", "offset": 6, "length": 5}]
    # A cut never leaves half of a surrogate pair.
    assert as_html("x😀😀", [], 3) == "x…"


async def test_current_message_preview_keeps_the_formatting(tg: Telegram, ready: TgUser) -> None:
    await tg.press(ready, "send_message")
    await tg.send(ready, ORDER_TEXT, entities=ORDER_ENTITIES)
    await tg.press(ready, "send_message")
    screen = tg.screen(ready)
    assert screen.has("message.current", "message.ask")
    assert "<b>Fresh <i>bread</i></b>" in screen.text
    assert '<a href="https://example.com/order?a=1&amp;b=&quot;2&quot;">order</a>' in screen.text
