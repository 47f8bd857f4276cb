"""The access check (docs/bot.md, "Access check"), end to end through the webhook."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from db import users
from tests.harness import Telegram, TgUser


async def _row(db: psycopg.AsyncConnection, user_id: int):
    return await users.get(db, user_id)


def _admin_requests(tg: Telegram, admin: TgUser) -> list[dict]:
    from tests.harness import message_keys

    return [m for m in tg.api.messages(admin.id) if "access.new_request" in message_keys(m.get("text", ""))]


async def test_unknown_user_gets_pending_row_welcome_and_admins_one_request(
    tg: Telegram, db, user: TgUser, admin: TgUser
) -> None:
    await tg.send(user, "hello")
    row = await _row(db, user.id)
    assert row is not None and row.status == "pending"
    assert row.expires_at is not None and row.expires_at <= datetime.now(UTC)
    assert (row.username, row.first_name) == ("ali", "Ali")
    assert tg.screen(user).has("access.welcome")
    requests = _admin_requests(tg, admin)
    assert len(requests) == 1
    screen = tg.screen(admin)
    assert screen.has("access.new_request")
    assert screen.callbacks == [f"admin_add_month:{user.id}", f"admin_user:{user.id}"]


async def test_second_message_of_pending_user_does_not_notify_again(
    tg: Telegram, db, user: TgUser, admin: TgUser
) -> None:
    await tg.send(user, "hello")
    await tg.send(user, "/menu")
    assert len(_admin_requests(tg, admin)) == 1
    assert tg.screen(user).has("access.not_active")


async def test_twenty_simultaneous_first_messages_make_one_row_and_one_notification(
    tg: Telegram, db, user: TgUser, admin: TgUser
) -> None:
    base = 7_000_000
    updates = [
        {
            "update_id": base + i,
            "message": {
                "message_id": 10 + i, "date": int(time.time()), "text": f"hi {i}",
                "chat": {"id": user.id, "type": "private"}, "from": user.as_dict(),
            },
        }
        for i in range(20)
    ]
    responses = await asyncio.gather(*(tg.post_update(u) for u in updates))
    assert all(r.status_code == 200 for r in responses)
    cur = await db.execute("SELECT count(*) FROM bot_users WHERE user_id = %(id)s", {"id": user.id})
    assert (await cur.fetchone())[0] == 1
    assert len(_admin_requests(tg, admin)) == 1


async def test_unknown_user_start_shows_greeting_and_no_access_and_creates_request(
    tg: Telegram, db, user: TgUser, admin: TgUser
) -> None:
    await tg.send(user, "/start")
    assert {"menu.greeting", "menu.no_access"} <= tg.all_keys(user)
    assert (await _row(db, user.id)).status == "pending"
    assert len(_admin_requests(tg, admin)) == 1


async def test_pending_user_can_use_id_and_lang(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="pending", expires_at=datetime.now(UTC))
    await tg.send(user, "/id")
    assert tg.screen(user).has("menu.your_id")
    await tg.send(user, "/lang")
    assert "lang:uz" in tg.screen(user).callbacks


async def test_expired_user_is_told_expired_and_handler_does_not_run(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.send(user, "/menu")
    screen = tg.screen(user)
    assert screen.has("access.expired") and "menu.not_connected" not in screen.keys


async def test_expired_user_pressing_a_button_gets_a_toast_only(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.press(user, "select_groups")
    assert "access.expired" in tg.toast_keys()
    assert tg.api.calls_of("editMessageText") == []


async def test_allowed_user_passes(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    await tg.send(user, "/menu")
    assert tg.screen(user).has("menu.not_connected")


async def test_permanent_user_passes(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await tg.send(user, "/menu")
    assert tg.screen(user).has("menu.not_connected")


async def test_super_admin_passes_without_a_row(tg: Telegram, db, admin: TgUser) -> None:
    await tg.send(admin, "/menu")
    assert tg.screen(admin).has("admin.menu_title")
    assert await _row(db, admin.id) is None


async def test_banned_user_is_denied_and_stays_banned(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    for text in ("/menu", "/start", "hello", "/lang"):
        tg.api.clear_calls()
        await tg.send(user, text)
        sent = [c.params.get("text", "") for c in tg.api.calls_of("sendMessage")]
        assert len(sent) == 1, text  # one short answer, nothing else runs (not even /start's greeting)
        assert tg.screen(user).has("access.denied")
    assert (await _row(db, user.id)).status == "banned"


async def test_banned_user_may_still_ask_their_id(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    await tg.send(user, "/id")
    assert tg.screen(user).has("menu.your_id")


async def test_banned_user_button_gets_denied_toast(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    await tg.press(user, "back_to_menu")
    assert "access.denied" in tg.toast_keys()


async def test_profile_refreshed_when_older_than_an_hour(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await db.execute("UPDATE bot_users SET profile_refreshed_at = now() - interval '2 hours' WHERE user_id = %(id)s",
                     {"id": user.id})
    renamed = TgUser(user.id, first_name="Vali", username="vali_new", language_code="ru")
    await tg.send(renamed, "/menu")
    row = await _row(db, user.id)
    assert (row.first_name, row.username, row.language_code) == ("Vali", "vali_new", "ru")
    assert datetime.now(UTC) - row.profile_refreshed_at < timedelta(minutes=1)


async def test_profile_not_refreshed_within_the_hour(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await db.execute("UPDATE bot_users SET first_name = 'Old', profile_refreshed_at = now() - interval '10 minutes' "
                     "WHERE user_id = %(id)s", {"id": user.id})
    await tg.send(user, "/menu")
    assert (await _row(db, user.id)).first_name == "Old"


async def test_unknown_user_pressing_a_button_gets_a_short_alert_and_a_request(
    tg: Telegram, db, user: TgUser, admin: TgUser
) -> None:
    await tg.press(user, "select_groups")
    assert "access.not_active" in tg.toast_keys()
    assert (await users.get(db, user.id)) is not None
    assert len(_admin_requests(tg, admin)) == 1


ALERT_KEYS = ("access.denied", "access.expired", "access.not_active", "common.not_allowed", "admin.ban_refused",
              "admin.user_not_found", "admin.toast_expiry", "admin.toast_permanent", "admin.toast_banned",
              "admin.toast_unbanned", "admin.toast_not_banned", "admin.announce_queued", "admin.announce_expired",
              "admin.announce_cancelled")


@pytest.mark.parametrize("lang", ["uz", "ru", "en"])
def test_toast_texts_fit_telegrams_200_characters(lang: str) -> None:
    from core.i18n import t
    from tests.catalogs import catalog

    values: dict[str, Any] = {"support": "@" + "s" * 32, "date": "2026-01-01", "count": 1_000_000}
    for key in ALERT_KEYS:
        plural = len(catalog(lang)[key]) > 1  # asked for with its count, as the handlers do
        text = t(lang, key, n=values["count"], **values) if plural else t(lang, key, **values)
        assert len(text) <= 200 and text != key, key
