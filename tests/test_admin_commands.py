"""/adduser, /ban, /unban, /info and the super admin's menu, through the webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import users
from db.rows import BotUser
from handlers.admin.commands import parse_adduser, parse_id
from tests.conftest import ADMIN_ID
from tests.harness import Telegram, TgUser

TARGET = 700_000_009


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("5", (5, 30)), ("5 7", (5, 7)), ("5 1", (5, 1)), ("5 36500", (5, 36500)), ("  5   10 ", (5, 10)),
        (None, None), ("", None), ("x", None), ("5 0", None), ("5 36501", None), ("5 -3", None),
        ("5 1.5", None), ("5 ten", None), ("5 7 9", None), ("-5", None), ("0", None), ("5 ١٢", None),
    ],
)
def test_parse_adduser(args, expected) -> None:
    assert parse_adduser(args) == expected


@pytest.mark.parametrize(("args", "expected"), [("5", 5), ("", None), (None, None), ("5 6", None), ("a", None)])
def test_parse_id(args, expected) -> None:
    assert parse_id(args) == expected


async def test_adduser_creates_row_grants_default_30_days_and_tells_the_user_once(
    tg: Telegram, db, admin: TgUser
) -> None:
    await tg.send(admin, f"/adduser {TARGET}")
    row = await _user(db, TARGET)
    assert row is not None and row.status == "active"
    assert row.expires_at is not None
    assert row.expires_at - datetime.now(UTC) == pytest.approx(timedelta(days=30), abs=timedelta(minutes=1))
    assert tg.screen(admin).has("admin.granted")
    granted = tg.screen(TARGET)
    assert granted.has("access.granted") and granted.callbacks == ["login", "back_to_menu"]
    await tg.send(admin, f"/adduser {TARGET} 7")  # already active: extends, no second message
    assert len(tg.api.messages(TARGET)) == 1
    row2 = await _user(db, TARGET)
    assert row2.expires_at is not None
    assert row2.expires_at - row.expires_at == pytest.approx(timedelta(days=7), abs=timedelta(seconds=5))


@pytest.mark.parametrize("args", ["", " abc", " 5 0", " 5 36501", " 5 x", " 5 1 2"])
async def test_adduser_bad_input_is_a_usage_error_and_changes_nothing(tg: Telegram, db, admin: TgUser, args) -> None:
    await tg.send(admin, f"/adduser{args}".replace("/adduser 5", f"/adduser {TARGET}"))
    assert tg.screen(admin).has("admin.usage_adduser")
    assert await users.get(db, TARGET) is None


async def test_ban_then_user_is_denied_then_unban_makes_pending(tg: Telegram, db, admin: TgUser) -> None:
    target = TgUser(TARGET, first_name="T")
    await tg.send(admin, f"/adduser {TARGET}")
    await tg.send(admin, f"/ban {TARGET}")
    assert tg.screen(admin).has("admin.banned")
    assert (await _user(db, TARGET)).status == "banned"
    await tg.send(target, "/menu")
    assert tg.screen(target).has("access.denied")
    assert (await _user(db, TARGET)).status == "banned"  # durable: not back to pending
    await tg.send(admin, f"/unban {TARGET}")
    assert tg.screen(admin).has("admin.unbanned")
    row = await _user(db, TARGET)
    assert row.status == "pending" and not row.allowed_at(datetime.now(UTC))
    await tg.send(target, "/menu")
    assert tg.screen(target).has("access.not_active")


async def test_ban_of_unknown_user_is_durable(tg: Telegram, db, admin: TgUser) -> None:
    await tg.send(admin, f"/ban {TARGET}")
    await tg.send(TgUser(TARGET), "hello")
    assert (await _user(db, TARGET)).status == "banned"
    assert tg.screen(TARGET).has("access.denied")


async def test_banning_a_super_admin_is_refused(tg: Telegram, db, admin: TgUser) -> None:
    await tg.send(admin, f"/ban {ADMIN_ID}")
    assert tg.screen(admin).has("admin.ban_refused")
    assert await users.get(db, ADMIN_ID) is None


async def test_unban_of_not_banned_user_changes_nothing(tg: Telegram, db, admin: TgUser) -> None:
    await tg.send(admin, f"/adduser {TARGET}")
    await tg.send(admin, f"/unban {TARGET}")
    assert tg.screen(admin).has("admin.not_banned")
    assert (await _user(db, TARGET)).status == "active"


@pytest.mark.parametrize("text", [f"/adduser {TARGET}", f"/ban {TARGET}", f"/unban {TARGET}", "/adduser"])
async def test_admin_commands_from_normal_users_get_no_answer_and_change_nothing(
    tg: Telegram, db, user: TgUser, text: str
) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await tg.send(user, text)
    assert tg.api.messages(user.id) == []
    assert await users.get(db, TARGET) is None


async def test_admin_info_and_menu(tg: Telegram, db, admin: TgUser) -> None:
    await users.set_access(db, 1, status="active", expires_at=None)
    await users.set_access(db, 2, status="pending", expires_at=datetime.now(UTC))
    await tg.send(admin, "/info")
    assert tg.screen(admin).has("admin.info")
    assert "2 total / 1 active / 1 pending" in tg.screen(admin).text
    await tg.send(admin, "/start")
    screen = tg.screen(admin)
    assert screen.has("admin.menu_title", "admin.menu_stats")
    # The admin tools, then the admin's own broadcast (not connected yet: Log in and the guide).
    assert screen.callbacks == ["admin_panel:requested:0", "admin_panel:confirmed:0", "admin_panel:all:0",
                                "admin_announce", "admin_stats", "login", "full_manual"]
    assert screen.has("menu.own_broadcast", "menu.not_connected")


async def _user(db, user_id: int) -> BotUser:
    row = await users.get(db, user_id)
    assert row is not None
    return row
