"""The admin panel: lists by filter, pages, the user card and its buttons; forged admin callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import accounts, announcements, users
from db.rows import BotUser
from services import access
from tests.conftest import ADMIN_ID
from tests.harness import Telegram, TgUser, _callbacks, message_keys

TARGET = 700_000_009


async def _seed(db, n: int, *, status: str = "active", days: int | None = 30, base: int = 100) -> list[int]:
    ids = []
    for i in range(n):
        expires = None if days is None else datetime.now(UTC) + timedelta(days=days)
        await users.set_access(db, base + i, status=status, expires_at=expires)
        await db.execute("UPDATE bot_users SET first_name = %(n)s WHERE user_id = %(id)s",
                         {"n": f"U{base + i}", "id": base + i})
        ids.append(base + i)
    return ids


def _user_buttons(callbacks: list[str]) -> list[str]:
    return [c for c in callbacks if c.startswith("admin_user:")]


async def test_all_filter_pages_ten_per_page_two_per_row(tg: Telegram, db, admin: TgUser) -> None:
    await _seed(db, 23)
    await tg.send(admin, "/menu")
    await tg.press(admin, "admin_panel:all:0")
    screen = tg.screen(admin)
    assert screen.has("admin.panel_header", "admin.panel_page")
    assert "page 1/3" in screen.text
    assert len(_user_buttons(screen.callbacks)) == 10
    rows = screen.raw["reply_markup"]["inline_keyboard"]
    assert all(len(r) == 2 for r in rows[:5])
    assert "admin_panel:all:1" in screen.callbacks and "admin_panel:all:-1" not in screen.callbacks
    for expected in ("admin_panel:requested:0", "admin_panel:confirmed:0", "admin_panel:banned:0",
                     "admin_announce", "back_to_menu", "admin_panel:all:0"):
        assert expected in screen.callbacks
    await tg.press(admin, "admin_panel:all:2")
    last = tg.screen(admin)
    assert len(_user_buttons(last.callbacks)) == 3 and "admin_panel:all:1" in last.callbacks
    assert "admin_panel:all:3" not in last.callbacks


async def test_out_of_range_page_is_clamped(tg: Telegram, db, admin: TgUser) -> None:
    await _seed(db, 3)
    await tg.press(admin, "admin_panel:all:99")
    assert "page 1/1" in tg.screen(admin).text


async def test_filters_pick_the_right_users(tg: Telegram, db, admin: TgUser) -> None:
    active = await _seed(db, 2, base=100)
    permanent = await _seed(db, 1, days=None, base=200)
    expired = await _seed(db, 1, days=-1, base=300)
    pending = await _seed(db, 1, status="pending", days=0, base=400)
    banned = await _seed(db, 1, status="banned", days=None, base=500)

    async def ids(view: str) -> set[int]:
        await tg.press(admin, f"admin_panel:{view}:0")
        return {int(c.split(":")[1]) for c in _user_buttons(tg.screen(admin).callbacks)}

    assert await ids("confirmed") == set(active + permanent)
    assert await ids("requested") == set(expired + pending)
    assert await ids("banned") == set(banned)
    assert await ids("all") == set(active + permanent + expired + pending + banned)


async def test_requested_latest_expiry_first(tg: Telegram, db, admin: TgUser) -> None:
    await users.set_access(db, 1, status="pending", expires_at=datetime.now(UTC) - timedelta(days=5))
    await users.set_access(db, 2, status="pending", expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.press(admin, "admin_panel:requested:0")
    assert _user_buttons(tg.screen(admin).callbacks) == ["admin_user:2", "admin_user:1"]


async def test_user_card_shows_the_user_and_buttons(tg: Telegram, db, admin: TgUser) -> None:
    await users.set_access(db, TARGET, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    await accounts.store(db, TARGET, tg_user_id=1, phone="+998901234567", session_enc=b"x")
    await tg.press(admin, f"admin_user:{TARGET}")
    screen = tg.screen(admin)
    assert screen.has("admin.card_id", "admin.card_status", "admin.card_expiry", "admin.card_account",
                      "admin.card_broadcast_off", "admin.card_groups", "admin.card_no_cycles")
    assert "+998*******67" in screen.text and "901234" not in screen.text
    assert screen.callbacks == [f"admin_add_week:{TARGET}", f"admin_add_month:{TARGET}",
                                f"admin_sub_month:{TARGET}", f"admin_add_vip:{TARGET}",
                                f"admin_block:{TARGET}", "admin_panel:all:0"]
    assert not screen.has("admin.card_accounts")  # one account: nothing more to count

    second = await accounts.store(db, TARGET, tg_user_id=2, phone="+998907654321", session_enc=b"y")
    await db.execute("UPDATE accounts SET status = 'revoked' WHERE id = %(a)s", {"a": second})
    await tg.press(admin, f"admin_user:{TARGET}")
    screen = tg.screen(admin)
    assert screen.has("admin.card_accounts") and "1 active of 2" in screen.text


async def test_a_pending_users_card_says_access_was_not_granted(tg: Telegram, db, admin: TgUser) -> None:
    newcomer = TgUser(TARGET, first_name="New", language_code="en")
    await tg.send(newcomer, "/start")  # a pending row, its expiry set in the past at creation
    row = await users.get(db, TARGET)
    assert row is not None and row.status == "pending" and row.expires_at is not None
    await tg.press(admin, f"admin_user:{TARGET}")
    screen = tg.screen(admin)
    assert screen.has("admin.card_not_granted") and "admin.card_expiry" not in screen.keys
    await users.set_access(db, TARGET, status="active", expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.press(admin, f"admin_user:{TARGET}")
    assert tg.screen(admin).has("admin.card_expiry")  # an expired grant keeps its date


async def test_unknown_user_card_is_a_toast(tg: Telegram, db, admin: TgUser) -> None:
    await tg.press(admin, "admin_user:12345")
    assert "admin.user_not_found" in tg.toast_keys()


@pytest.mark.parametrize(("data", "days"), [("admin_add_week", 7), ("admin_add_month", 30), ("admin_add_vip", 3650),
                                            ("admin_sub_month", -30)])
async def test_expiry_buttons_move_the_expiry_and_redraw(tg: Telegram, db, admin: TgUser, data: str,
                                                         days: int) -> None:
    start = datetime.now(UTC) + timedelta(days=10)
    await users.set_access(db, TARGET, status="active", expires_at=start)
    await tg.press(admin, f"{data}:{TARGET}")
    row = await _user(db, TARGET)
    assert row.expires_at is not None
    assert row.expires_at - start == pytest.approx(timedelta(days=days), abs=timedelta(seconds=5))
    assert "admin.toast_expiry" in tg.toast_keys()
    assert tg.screen(admin).has("admin.card_id")


async def test_request_notification_plus_30_grants_and_user_told_once(
    tg: Telegram, db, admin: TgUser, user: TgUser
) -> None:
    await tg.send(user, "hello")  # the request, with [+30 days] for the admin
    await tg.press(admin, f"admin_add_month:{user.id}")
    await tg.press(admin, f"admin_add_month:{user.id}")  # a double press: one more month, no second message
    row = await _user(db, user.id)
    assert row.status == "active"
    assert row.expires_at is not None
    assert row.expires_at - datetime.now(UTC) == pytest.approx(timedelta(days=60), abs=timedelta(minutes=1))
    granted = [m for m in tg.api.messages(user.id) if "access.granted" in message_keys(m.get("text", ""))]
    assert len(granted) == 1
    assert _callbacks(granted[0].get("reply_markup"))[0] == ["login", "back_to_menu"]
    await tg.send(user, "/menu")
    assert tg.screen(user).has("menu.not_connected")


async def test_sub_month_into_the_past_makes_user_expired(tg: Telegram, db, admin: TgUser) -> None:
    await access.grant(db, TARGET, 7)
    await tg.press(admin, f"admin_sub_month:{TARGET}")
    assert not (await _user(db, TARGET)).allowed_at(datetime.now(UTC))


async def test_block_and_unban_buttons(tg: Telegram, db, admin: TgUser) -> None:
    await access.grant(db, TARGET, 7)
    await tg.press(admin, f"admin_block:{TARGET}")
    assert (await _user(db, TARGET)).status == "banned"
    assert f"admin_unban:{TARGET}" in tg.screen(admin).callbacks
    await tg.press(admin, f"admin_unban:{TARGET}")
    assert (await _user(db, TARGET)).status == "pending"
    assert f"admin_block:{TARGET}" in tg.screen(admin).callbacks


async def test_block_button_on_super_admin_is_refused(tg: Telegram, db, admin: TgUser) -> None:
    await tg.press(admin, f"admin_block:{ADMIN_ID}")
    assert "admin.ban_refused" in tg.toast_keys()
    assert await users.get(db, ADMIN_ID) is None


FORGED = [
    "admin_panel:all:0", "admin_panel:requested:0", "admin_panel:confirmed:0", "admin_panel:banned:0",
    f"admin_user:{TARGET}", f"admin_add_week:{TARGET}", f"admin_add_month:{TARGET}", f"admin_add_vip:{TARGET}",
    f"admin_sub_month:{TARGET}", f"admin_block:{TARGET}", f"admin_unban:{TARGET}", "admin_announce",
    "admin_announce_confirm", "admin_announce_cancel", "admin_stats",
]


@pytest.mark.parametrize("data", FORGED)
async def test_forged_admin_callback_from_normal_user_changes_nothing(
    tg: Telegram, db, redis, user: TgUser, data: str
) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await users.set_access(db, TARGET, status="banned" if "unban" in data else "active",
                           expires_at=datetime.now(UTC) + timedelta(days=3))
    before = await _user(db, TARGET)
    await tg.press(user, data)
    assert tg.toast_keys() == {"common.not_allowed"}
    after = await _user(db, TARGET)
    assert (after.status, after.expires_at) == (before.status, before.expires_at)
    assert tg.api.messages(user.id) == []  # no screen shown, no photo, no preview
    assert await announcements.get(db, 1) is None
    assert [k for k in await redis.keys("*fsm*")] == []  # no conversation state set


async def _user(db, user_id: int) -> BotUser:
    row = await users.get(db, user_id)
    assert row is not None
    return row
