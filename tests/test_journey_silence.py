"""Messages nobody asked for get an answer: free text and unknown commands get the menu, and a logged-in
user's text or media outside any conversation is offered as the broadcast message (one button)."""

from __future__ import annotations

import itertools
import time

import pytest

from db import configs, messages
from handlers.states import LoginStates
from tests.harness import Telegram, TgUser, sent_to
from tests.journey_helpers import allow, fsm_state, log_in

GUEST_MENU = ["login", "full_manual"]
PICKER = ["set_interval:3", "set_interval:5", "set_interval:10", "set_interval:30", "set_interval_custom",
          "cancel_broadcast"]
_ids = itertools.count(7_000_000)


@pytest.fixture
async def ready(tg: Telegram, net, db, user: TgUser) -> TgUser:
    await allow(db, user)
    await log_in(tg, net, user)
    return user


def _offered_id(tg: Telegram, user: TgUser) -> int:
    """The offer answers the user's own message (reply) and its button names that message's id."""
    screen = tg.screen(user)
    assert screen.has("message.offer")
    [use, menu] = screen.callbacks
    assert menu == "back_to_menu" and use.startswith("use_as_message:")
    replied = tg.api.calls_of("sendMessage")[-1].params["reply_parameters"]["message_id"]
    assert int(use.split(":")[1]) == replied
    return replied


async def test_free_text_from_someone_not_logged_in_gets_the_hint_and_the_menu(tg: Telegram, db,
                                                                               user: TgUser) -> None:
    await allow(db, user)
    await tg.send(user, "hello, is this thing on?")
    screen = tg.screen(user)
    assert screen.has("common.hint", "menu.not_connected")
    assert screen.callbacks == GUEST_MENU


async def test_unknown_command_names_the_commands_and_shows_the_menu(app, tg: Telegram, ready: TgUser) -> None:
    await tg.send(ready, "/frobnicate now")
    screen = tg.screen(ready)
    assert screen.has("common.unknown_command", "menu.status_title")
    assert screen.callbacks[0] == "start_broadcast"
    assert await fsm_state(app, ready) is None


async def test_pasted_text_is_offered_and_one_press_makes_it_the_message(app, tg: Telegram, db,
                                                                          ready: TgUser) -> None:
    text = "Fresh bread 🍞 every morning — order"
    entities = [{"type": "bold", "offset": 0, "length": 11},
                {"type": "text_link", "offset": 33, "length": 5, "url": "https://example.com/order"}]
    await tg.send(ready, text, entities=entities)
    mid = _offered_id(tg, ready)
    config = await configs.get(db, ready.id)
    assert config is None or config.message_id is None  # nothing is saved before the press
    await tg.press(ready, f"use_as_message:{mid}")
    screen = tg.screen(ready)
    assert screen.has("message.saved") and screen.callbacks == PICKER
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id is not None
    saved = await messages.get_owned(db, ready.id, config.message_id)
    assert saved is not None and (saved.kind, saved.text, saved.entities) == ("text", text, entities)
    assert await fsm_state(app, ready) is None
    # The offer is used up: pressing it again is an outdated button, nothing more is stored.
    await tg.press(ready, f"use_as_message:{mid}")
    assert "common.outdated_button" in tg.toast_keys()
    assert await messages.count(db, ready.id) == 1


async def test_a_pasted_photo_is_downloaded_only_when_the_offer_is_taken(tg: Telegram, db, ready: TgUser,
                                                                         botapi) -> None:
    botapi.add_file("PASTED-PIC", b"\xff\xd8 picture" * 10)
    await tg.send_content(ready, photo=[{"file_id": "PASTED-PIC", "file_unique_id": "pp", "width": 10,
                                         "height": 10, "file_size": 100}],
                          caption="Sale", caption_entities=[{"type": "italic", "offset": 0, "length": 4}])
    mid = _offered_id(tg, ready)
    assert not botapi.calls_of("getFile")
    await tg.press(ready, f"use_as_message:{mid}")
    assert tg.screen(ready).has("message.saved")
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id is not None
    saved = await messages.get_owned(db, ready.id, config.message_id)
    assert saved is not None and (saved.kind, saved.text) == ("photo", "Sale") and saved.media_id is not None


async def test_an_album_gets_one_offer(tg: Telegram, ready: TgUser, botapi) -> None:
    for n in range(3):
        await tg.send_content(ready, media_group_id="album-1",
                              photo=[{"file_id": f"ALB-{n}", "file_unique_id": f"a{n}", "width": 1, "height": 1}])
    offers = [c for c in sent_to(botapi, ready.id) if c.method == "sendMessage"
              and "use_as_message" in str(c.params.get("reply_markup"))]
    assert len(offers) == 1


async def test_a_newer_offer_or_a_reset_makes_the_older_button_outdated(tg: Telegram, db, ready: TgUser) -> None:
    await tg.send(ready, "first ad")
    first = _offered_id(tg, ready)
    await tg.send(ready, "second ad")
    second = _offered_id(tg, ready)
    await tg.press(ready, f"use_as_message:{first}")
    assert "common.outdated_button" in tg.toast_keys()
    assert tg.screen(ready).has("menu.status_title")
    await tg.send(ready, "/start")
    await tg.press(ready, f"use_as_message:{second}")
    assert await messages.count(db, ready.id) == 0


async def test_a_forged_offer_press_saves_nothing(tg: Telegram, net, db, ready: TgUser, user: TgUser) -> None:
    await tg.send(ready, "my ad")
    mid = _offered_id(tg, ready)
    other = TgUser(id=user.id + 1, first_name="Other")
    await allow(db, other)
    await log_in(tg, net, other, phone="+998907654321")
    await tg.press(other, f"use_as_message:{mid}")
    assert "common.outdated_button" in tg.toast_keys()
    assert await messages.count(db, other.id) == 0
    stranger = TgUser(id=user.id + 2, first_name="Stranger")
    await allow(db, stranger)
    await tg.press(stranger, f"use_as_message:{mid}")
    assert "menu.need_login" in tg.toast_keys()


async def test_what_cannot_be_broadcast_gets_the_hint(tg: Telegram, ready: TgUser) -> None:
    await tg.send_content(ready, sticker={"file_id": "STK", "file_unique_id": "s", "width": 1, "height": 1,
                                          "is_animated": False, "is_video": False, "type": "regular"})
    screen = tg.screen(ready)
    assert screen.has("common.hint", "menu.status_title") and "message.offer" not in screen.keys


async def test_the_wrong_kind_of_answer_in_a_conversation_keeps_it(app, tg: Telegram, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "login")
    await tg.send_content(user, photo=[{"file_id": "X", "file_unique_id": "x", "width": 1, "height": 1}])
    assert tg.screen(user).has("common.unexpected")
    assert await fsm_state(app, user) == LoginStates.WAITING_PHONE.state
    await tg.send(user, "/frobnicate")
    assert tg.screen(user).has("common.unexpected")
    assert await fsm_state(app, user) == LoginStates.WAITING_PHONE.state


async def test_someone_without_access_still_gets_the_access_answer(tg: Telegram, db, user: TgUser) -> None:
    await db.execute(
        "INSERT INTO bot_users (user_id, status, expires_at) VALUES (%(id)s, 'pending', now())", {"id": user.id}
    )
    await tg.send(user, "hello")
    screen = tg.screen(user)
    assert screen.has("access.not_active") and "common.hint" not in screen.keys


async def test_chatter_in_a_group_gets_no_answer(tg: Telegram, ready: TgUser, botapi) -> None:
    botapi.clear_calls()
    update = {"update_id": next(_ids), "message": {
        "message_id": next(_ids), "date": int(time.time()), "text": "hi all",
        "chat": {"id": -100777, "type": "supergroup", "title": "Some group"}, "from": ready.as_dict()}}
    response = await tg.post_update(update)
    assert response.status_code == 200
    assert not [c for c in botapi.calls if c.method.startswith("send")]
