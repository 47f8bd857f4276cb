"""/start, /menu, /id, /info, the two main menus, back_to_menu, restart_bot, outdated buttons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import configs
from handlers.states import BroadcastStates
from tests.conftest import ADMIN_ID
from tests.harness import Telegram, TgUser, sent_to
from tests.journey_helpers import allow, fsm_state, log_in, make_groups

GUEST_MENU = ["login", "full_manual"]
ACCOUNT_MENU = ["start_broadcast", "select_groups", "send_message", "pile_up_menu", "sent_messages", "restart_bot",
                "full_manual", "accounts", "logout"]


async def test_start_without_video_greets_then_shows_the_guest_menu(tg: Telegram, db, user: TgUser, botapi) -> None:
    await allow(db, user)
    await tg.send(user, "/start")
    assert not botapi.calls_of("sendVideo")
    assert "menu.greeting" in tg.all_keys(user)
    screen = tg.screen(user)
    assert screen.has("menu.not_connected")
    assert screen.callbacks == GUEST_MENU


VIDEO = pytest.mark.parametrize("settings_overrides", [{"manual_video_file_id": "VIDEO-FILE-ID"}])


@VIDEO
async def test_start_sends_the_guide_video_first(tg: Telegram, db, user: TgUser, botapi) -> None:
    await allow(db, user)
    await tg.send(user, "/start")
    calls = [c.method for c in sent_to(botapi, user.id)]
    assert calls[0] == "sendVideo"
    assert botapi.calls_of("sendVideo")[0].params["video"] == "VIDEO-FILE-ID"
    assert calls.index("sendVideo") < calls.index("sendMessage")
    assert tg.screen(user).callbacks == GUEST_MENU


async def test_start_resets_an_unfinished_conversation(app, tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user)
    await tg.press(user, "send_message")
    assert await fsm_state(app, user) == BroadcastStates.WAITING_BROADCAST_MSG.state
    await tg.send(user, "/start")
    assert await fsm_state(app, user) is None
    assert tg.screen(user).callbacks == ACCOUNT_MENU


async def test_start_for_someone_without_access_greets_but_shows_no_menu(tg: Telegram, db, user: TgUser) -> None:
    await db.execute(
        "INSERT INTO bot_users (user_id, status, expires_at) VALUES (%(id)s, 'pending', now())", {"id": user.id}
    )
    await tg.send(user, "/start")
    keys = tg.all_keys(user)
    assert "menu.greeting" in keys
    assert "menu.not_connected" not in keys and "menu.status_title" not in keys


async def test_menu_command_shows_the_menu_and_resets_state(app, tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user)
    await tg.press(user, "set_interval_custom")
    await tg.send(user, "/menu")
    assert await fsm_state(app, user) is None
    screen = tg.screen(user)
    assert screen.has("menu.status_title") and "menu.greeting" not in screen.keys
    assert screen.callbacks == ACCOUNT_MENU


async def test_logged_in_menu_shows_the_status_block(tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    groups = make_groups(3)
    await log_in(tg, net, user, groups=groups)
    screen = tg.screen(user)
    assert screen.has("menu.status_account", "menu.status_groups", "menu.status_off", "menu.status_interval_unset",
                      "menu.status_message_missing", "menu.status_no_cycles")
    assert "+998*******67" in screen.text and "901234567" not in screen.text
    assert screen.callbacks == ACCOUNT_MENU


async def test_status_block_shows_a_running_broadcast_and_the_last_cycle(tg: Telegram, db, net,
                                                                          user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user, groups=make_groups(2))
    await tg.press(user, "add_all_groups:0")
    await tg.press(user, "send_message")
    await tg.send(user, "Hello groups")
    await tg.press(user, "set_interval:5")
    config = await configs.get(db, user.id)
    assert config is not None and config.message_id is not None
    finished = datetime.now(UTC) - timedelta(minutes=1)
    await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, started_at,
                            finished_at, status, outcome, total, sent, failed)
        VALUES (%(o)s, 1, %(m)s, 5, %(t)s, %(t)s, %(t)s, %(t)s, 'done', 'partial', 2, 1, 1)
        """,
        {"o": user.id, "m": config.message_id, "t": finished},
    )
    await tg.press(user, "restart_bot")
    screen = tg.screen(user)
    assert screen.has("menu.status_on", "menu.status_interval", "menu.status_message_set", "menu.status_last_cycle")
    assert "Every 5 min" in screen.text and "sent 1, failed 1" in screen.text
    assert screen.callbacks[0] == "stop_broadcast"
    assert "menu.refreshed" in tg.toast_keys()


async def test_back_to_menu_edits_into_the_menu(tg: Telegram, db, user: TgUser, botapi) -> None:
    await allow(db, user)
    await tg.send(user, "/lang")
    await tg.press(user, "back_to_menu")
    assert botapi.calls_of("editMessageText")
    assert tg.screen(user).callbacks == GUEST_MENU


async def test_id_answers_for_everyone(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/id")
    screen = tg.screen(user)
    assert screen.has("menu.your_id") and str(user.id) in screen.text


async def test_info_for_a_user_with_expiry_and_permanent(tg: Telegram, db, user: TgUser) -> None:
    until = datetime(2031, 5, 17, 12, tzinfo=UTC)
    await allow(db, user, expires_at=until)
    await tg.send(user, "/info")
    screen = tg.screen(user)
    assert screen.has("menu.info_until") and "2031-05-17" in screen.text
    await allow(db, user)
    await tg.send(user, "/info")
    assert tg.screen(user).has("menu.info_permanent")


async def test_info_for_a_super_admin(tg: Telegram, admin: TgUser) -> None:
    await tg.send(admin, "/info")
    text = tg.screen(admin).text
    assert text  # the admin part (another module) or the generic line
    assert "menu.info_until" not in tg.screen(admin).keys


async def test_super_admin_gets_a_menu_even_before_the_admin_tools(tg: Telegram, admin: TgUser) -> None:
    await tg.send(admin, "/menu")
    screen = tg.screen(admin)
    assert screen.callbacks  # the admin menu when it exists, else the user menu
    assert ADMIN_ID == admin.id


ADMIN_TOOLS = ["admin_panel:requested:0", "admin_panel:confirmed:0", "admin_panel:all:0", "admin_announce",
               "admin_stats"]


async def test_super_admin_runs_their_own_broadcast_from_the_admin_menu(tg: Telegram, db, net,
                                                                       admin: TgUser) -> None:
    await tg.send(admin, "/start")
    screen = tg.screen(admin)
    assert screen.has("admin.menu_title", "menu.own_broadcast", "menu.not_connected")
    assert screen.callbacks == ADMIN_TOOLS + GUEST_MENU
    # An account-bound button before logging in lands on the same menu, whose Log in is right there.
    await tg.press(admin, "select_groups")
    assert "menu.need_login" in tg.toast_keys() and tg.screen(admin).callbacks == ADMIN_TOOLS + GUEST_MENU
    await log_in(tg, net, admin, groups=make_groups(2))
    screen = tg.screen(admin)
    assert screen.has("login.success", "admin.menu_title", "menu.status_title", "menu.status_off")
    assert screen.callbacks == ADMIN_TOOLS + ACCOUNT_MENU
    await tg.press(admin, "add_all_groups:0")
    await tg.press(admin, "send_message")
    await tg.send(admin, "The admin's own ad")
    await tg.press(admin, "set_interval:10")
    config = await configs.get(db, admin.id)
    assert config is not None and config.active and config.interval_minutes == 10
    screen = tg.screen(admin)
    assert screen.has("broadcast.started", "admin.menu_title", "menu.status_on")
    assert screen.callbacks[: len(ADMIN_TOOLS)] == ADMIN_TOOLS
    assert screen.callbacks[len(ADMIN_TOOLS)] == "stop_broadcast"
    await tg.press(admin, "stop_broadcast")
    config = await configs.get(db, admin.id)
    assert config is not None and not config.active


async def test_outdated_button_toasts_and_shows_the_menu(tg: Telegram, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "no_such_button:42")
    assert "common.outdated_button" in tg.toast_keys()
    assert tg.screen(user).callbacks == GUEST_MENU
