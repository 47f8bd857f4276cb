"""PLANS unset: nothing is sold. No buy button or payment command anywhere, and every screen is what
it was without the feature (docs/payments.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.webhook_admin import ALLOWED_UPDATES
from db import users
from tests.harness import Telegram, TgUser, _callbacks
from tests.payments_helpers import payload, pre_checkout


def _every_callback(tg: Telegram, *chats: int) -> list[str]:
    return [c for chat in chats for m in tg.api.messages(chat) for c in _callbacks(m.get("reply_markup"))[0]]


async def test_no_buy_button_anywhere(tg: Telegram, db, user: TgUser, admin: TgUser, settings) -> None:
    assert settings.plans == ()
    pending = TgUser(700_000_002, first_name="Pending")
    expired = TgUser(700_000_003, first_name="Expired")
    await users.set_access(db, expired.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=1))
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    for who in (pending, expired, user):
        for text in ("/start", "/menu", "hello", "/buy", "/paysupport", "/terms"):
            await tg.send(who, text)
    await tg.send(admin, "/menu")
    await tg.press(admin, f"admin_user:{user.id}")
    callbacks = _every_callback(tg, pending.id, expired.id, user.id, admin.id)
    assert callbacks and not any(c.startswith(("pay_", "admin_refund")) for c in callbacks)
    keys = set().union(*(tg.all_keys(who) for who in (pending, expired, user, admin)))
    assert not any(k.startswith("payments.") for k in keys)
    assert not tg.api.calls_of("sendInvoice") and not tg.api.calls_of("createInvoiceLink")


async def test_the_menu_and_refusals_are_unchanged(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    await tg.send(user, "/menu")
    screen = tg.screen(user)
    assert screen.keys == {"menu.not_connected"} and screen.callbacks == ["login", "full_manual"]
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=3))
    await tg.send(user, "hello")
    screen = tg.screen(user)
    assert screen.keys == {"access.expired"} and screen.callbacks == []


async def test_a_forged_buy_button_is_outdated(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    await tg.press(user, "pay_buy:week")
    await tg.press(user, "pay_plans")
    assert not tg.api.calls_of("sendInvoice")
    assert tg.toast_keys() == {"common.outdated_button"}


async def test_pre_checkout_is_refused_without_plans(tg: Telegram, user: TgUser) -> None:
    answer = await pre_checkout(tg, user, payload("week", 7, 250, user.id), 250)
    assert answer is not None and answer["ok"] is False


async def test_admin_stats_keep_one_chart(tg: Telegram, admin: TgUser) -> None:
    await tg.press(admin, "admin_stats")
    assert len(tg.api.calls_of("sendPhoto")) == 1
    assert "payments.stats_line" not in tg.all_keys(admin)


def test_the_webhook_asks_for_pre_checkout_queries() -> None:
    assert "pre_checkout_query" in ALLOWED_UPDATES
