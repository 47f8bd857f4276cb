"""History: paging, usage counts, view/use/delete with owner checks on every id."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from db import configs
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in

PICKER = ["set_interval:3", "set_interval:5", "set_interval:10", "set_interval:30", "set_interval_custom",
          "cancel_broadcast"]


@pytest.fixture
async def ready(tg: Telegram, net, db, user: TgUser) -> TgUser:
    await allow(db, user)
    await log_in(tg, net, user)
    return user


async def _write(tg: Telegram, user: TgUser, *texts: str) -> None:
    for text in texts:
        await tg.press(user, "send_message")
        await tg.send(user, text)


async def _ids(db, owner: int) -> list[int]:
    cur = await db.execute(
        "SELECT id FROM messages WHERE owner_id = %(o)s AND deleted_at IS NULL ORDER BY id", {"o": owner}
    )
    return [r[0] for r in await cur.fetchall()]


async def _cycle(db, owner: int, message_id: int, seq: int, sent: int) -> None:
    now = datetime.now(UTC)
    await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, finished_at,
                            status, outcome, total, sent)
        VALUES (%(o)s, %(s)s, %(m)s, 5, %(t)s, %(t)s, %(t)s, 'done', 'sent', %(n)s, %(n)s)
        """,
        {"o": owner, "s": seq, "m": message_id, "t": now, "n": sent},
    )


async def test_history_needs_a_login(tg: Telegram, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "sent_messages")
    assert "menu.need_login" in tg.toast_keys()


async def test_empty_history(tg: Telegram, ready: TgUser) -> None:
    await tg.press(ready, "sent_messages")
    screen = tg.screen(ready)
    assert screen.has("history.empty") and screen.callbacks == ["back_to_menu"]


async def test_history_pages_five_at_a_time_newest_first(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, *(f"message number {i}" for i in range(7)))
    ids = await _ids(db, ready.id)
    await tg.press(ready, "sent_messages")
    screen = tg.screen(ready)
    assert screen.has("history.title", "history.page") and "7 messages" in screen.text
    assert screen.callbacks == [f"history_view:{i}" for i in reversed(ids[2:])] + [
        "sent_messages_page:1", "back_to_menu"]
    labels = [b["text"] for row in screen.raw["reply_markup"]["inline_keyboard"] for b in row][:5]
    assert all(re.fullmatch(r"\d\d-\d\d \d\d:\d\d – message number \d", label) for label in labels), labels
    await tg.press(ready, "sent_messages_page:1")
    assert tg.screen(ready).callbacks == [f"history_view:{i}" for i in reversed(ids[:2])] + [
        "sent_messages_page:0", "back_to_menu"]


@pytest.mark.parametrize("requested", [5, 99])
async def test_history_page_out_of_range_is_clamped(tg: Telegram, db, ready: TgUser, requested: int) -> None:
    await _write(tg, ready, *(f"m{i}" for i in range(6)))
    ids = await _ids(db, ready.id)
    await tg.press(ready, f"sent_messages_page:{requested}")
    assert tg.screen(ready).callbacks[0] == f"history_view:{ids[0]}"


async def test_history_counts_cycles_and_successful_sends(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, "counted ad")
    [mid] = await _ids(db, ready.id)
    await _cycle(db, ready.id, mid, 1, 3)
    await _cycle(db, ready.id, mid, 2, 4)
    await tg.press(ready, "sent_messages")
    assert tg.screen(ready).has("history.line") and "rounds: 2, delivered: 7" in tg.screen(ready).text
    await tg.press(ready, f"history_view:{mid}")
    screen = tg.screen(ready)
    assert screen.has("history.view") and "Rounds: 2, delivered to groups: 7" in screen.text


async def test_view_own_message(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, "full <text> of the ad, longer than twenty characters")
    [mid] = await _ids(db, ready.id)
    await tg.press(ready, "sent_messages")
    await tg.press(ready, f"history_view:{mid}")
    screen = tg.screen(ready)
    assert screen.has("history.view")
    assert "full &lt;text&gt; of the ad, longer than twenty characters" in screen.text
    assert screen.callbacks == [f"history_use:{mid}", f"history_delete:{mid}", "sent_messages"]


async def test_view_media_message_sends_a_preview(tg: Telegram, db, ready: TgUser, botapi) -> None:
    botapi.add_file("PIC", b"picture-bytes")
    await tg.press(ready, "send_message")
    await tg.send_content(ready, photo=[{"file_id": "PIC", "file_unique_id": "p", "width": 1, "height": 1,
                                         "file_size": 13}], caption="with picture")
    [mid] = await _ids(db, ready.id)
    await tg.press(ready, f"history_view:{mid}")
    assert botapi.calls_of("sendPhoto")
    screen = tg.screen(ready)
    assert screen.has("history.view") and screen.callbacks[0] == f"history_use:{mid}"


async def _someone_elses_message(tg: Telegram, net, db) -> tuple[TgUser, int]:
    other = TgUser(700_000_055, first_name="Other")
    await allow(db, other)
    await log_in(tg, net, other, phone="+998907777777")
    await _write(tg, other, "private ad of someone else")
    [mid] = await _ids(db, other.id)
    return other, mid


async def test_others_ids_are_not_found_for_view_use_delete(tg: Telegram, net, db, ready: TgUser) -> None:
    other, theirs = await _someone_elses_message(tg, net, db)
    await _write(tg, ready, "mine")
    [mine] = await _ids(db, ready.id)
    for action in ("history_view", "history_use", "history_delete"):
        tg.api.clear_calls()
        await tg.press(ready, f"{action}:{theirs}")
        assert "history.not_found" in tg.toast_keys(), action
        assert "private ad" not in "".join(c.params.get("text", "") for c in tg.api.calls)
    assert await _ids(db, other.id) == [theirs]
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id == mine
    tg.api.clear_calls()
    await tg.press(ready, "history_view:999999")
    assert "history.not_found" in tg.toast_keys()


async def test_use_again_makes_it_current_and_offers_the_interval(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, "old ad", "new ad")
    old, new = await _ids(db, ready.id)
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id == new
    await tg.press(ready, f"history_use:{old}")
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id == old
    screen = tg.screen(ready)
    assert screen.has("history.used") and screen.callbacks == PICKER


async def test_delete_refuses_the_current_message_and_deletes_others(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, "older", "current")
    older, current = await _ids(db, ready.id)
    await tg.press(ready, f"history_delete:{current}")
    assert "history.is_current" in tg.toast_keys()
    assert await _ids(db, ready.id) == [older, current]

    await tg.press(ready, "sent_messages")
    await tg.press(ready, f"history_delete:{older}")
    assert "history.deleted" in tg.toast_keys()
    assert await _ids(db, ready.id) == [current]
    cur = await db.execute("SELECT deleted_at IS NOT NULL FROM messages WHERE id = %(m)s", {"m": older})
    assert (await cur.fetchone())[0] is True  # soft delete: cycles that sent it keep their reference
    screen = tg.screen(ready)
    assert screen.callbacks == [f"history_view:{current}", "back_to_menu"]
    await tg.press(ready, f"history_view:{older}")
    assert "history.not_found" in tg.toast_keys()


async def test_view_keeps_the_formatting_as_it_will_be_posted(tg: Telegram, db, ready: TgUser) -> None:
    text = "Fresh bread daily, order"
    entities = [{"type": "bold", "offset": 0, "length": 5},
                {"type": "text_link", "offset": 19, "length": 5, "url": "https://example.com/order"}]
    await tg.press(ready, "send_message")
    await tg.send(ready, text, entities=entities)
    [mid] = await _ids(db, ready.id)
    await tg.press(ready, f"history_view:{mid}")
    screen = tg.screen(ready)
    assert screen.has("history.view")
    assert '<b>Fresh</b> bread daily, <a href="https://example.com/order">order</a>' in screen.text
    assert screen.callbacks == [f"history_use:{mid}", f"history_delete:{mid}", "sent_messages"]


async def test_view_of_media_sends_it_with_its_formatted_caption(tg: Telegram, db, ready: TgUser, botapi) -> None:
    botapi.add_file("PIC2", b"picture-bytes")
    await tg.press(ready, "send_message")
    await tg.send_content(ready, photo=[{"file_id": "PIC2", "file_unique_id": "p2", "width": 1, "height": 1,
                                         "file_size": 13}],
                          caption="Sale today", caption_entities=[{"type": "italic", "offset": 0, "length": 4}])
    [mid] = await _ids(db, ready.id)
    await tg.press(ready, f"history_view:{mid}")
    [photo] = botapi.calls_of("sendPhoto")
    assert photo.params["caption"] == "<i>Sale</i> today"
    screen = tg.screen(ready)
    assert screen.has("history.view") and "Sale" not in screen.text  # the caption is on the photo
    assert screen.callbacks[0] == f"history_use:{mid}"


async def test_view_of_a_text_at_the_limit_sends_it_alone(tg: Telegram, db, ready: TgUser, botapi) -> None:
    text = "<" + "x" * 4094 + "&"  # 4096 units: no room for the details beside it
    await tg.press(ready, "send_message")
    await tg.send(ready, text, entities=[{"type": "bold", "offset": 0, "length": 1}])
    [mid] = await _ids(db, ready.id)
    botapi.clear_calls()
    await tg.press(ready, f"history_view:{mid}")
    sent = [c.params["text"] for c in botapi.calls_of("sendMessage")]
    assert sent[0] == "<b>&lt;</b>" + "x" * 4094 + "&amp;"
    screen = tg.screen(ready)
    assert screen.has("history.view") and screen.callbacks[0] == f"history_use:{mid}"
