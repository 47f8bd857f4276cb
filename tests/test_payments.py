"""Buying access with Telegram Stars through the webhook (docs/payments.md): the offer, invoices,
pre-checkout, granting exactly once, renewals, cancelling, refunds, /paysupport and /terms.

The fake Bot API records every call; tests assert on rows, message keys and callback ids."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.plans import parse_payload
from db import payments, users
from tests.conftest import ADMIN_ID
from tests.harness import WEBHOOK_SECRET, Telegram, TgUser, _callbacks, sent_to
from tests.payments_helpers import MONTH_S, PLANS, paid_update, pay, payload, payment_rows, pre_checkout

WEEK = payload("week", 7, 250, 700_000_001)
MONTH = payload("month", 30, 750, 700_000_001)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"plans": PLANS}


def _close(a: datetime | None, b: datetime, seconds: float = 60) -> bool:
    return a is not None and abs((a - b).total_seconds()) < seconds


async def _expiry(db, user_id: int) -> datetime | None:
    row = await users.get(db, user_id)
    assert row is not None
    return row.expires_at


def _all_callbacks(tg: Telegram, chat: int) -> list[str]:
    return [c for m in tg.api.messages(chat) for c in _callbacks(m.get("reply_markup"))[0]]


# ---- the offer ---------------------------------------------------------------------------------------


async def test_a_new_user_is_offered_the_plans_on_start(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/start")
    screen = tg.screen(user)
    assert screen.has("menu.no_access", "payments.offer")
    assert screen.callbacks == ["pay_buy:week", "pay_buy:month", "pay_terms"]


async def test_pending_and_expired_users_get_the_offer_with_the_refusal(tg: Telegram, db, user: TgUser) -> None:
    await users.create_pending(db, user.id, username=None, first_name="Ali", last_name=None, language_code="en")
    await tg.send(user, "hello")
    assert tg.screen(user).has("access.not_active", "payments.offer")
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.send(user, "/menu")
    screen = tg.screen(user)
    assert screen.has("access.expired", "payments.offer") and "pay_buy:week" in screen.callbacks


async def test_a_banned_user_is_offered_nothing(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    for text in ("/start", "hello", "/buy"):
        await tg.send(user, text)
    assert "access.denied" in tg.all_keys(user) and "payments.offer" not in tg.all_keys(user)
    assert not any(c.startswith("pay_") for c in _all_callbacks(tg, user.id))
    await tg.press(user, "pay_buy:week")
    assert not tg.api.calls_of("sendInvoice")


async def test_an_allowed_user_sees_the_expiry_and_can_extend(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    await tg.send(user, "/menu")
    screen = tg.screen(user)
    assert screen.has("payments.menu_until") and "pay_plans" in screen.callbacks
    await tg.press(user, "pay_plans")
    screen = tg.screen(user)
    assert screen.has("payments.plans_title", "payments.plan_line", "payments.plan_line_recurring")
    assert screen.callbacks == ["pay_buy:week", "pay_buy:month", "pay_terms", "back_to_menu"]


async def test_permanent_access_shows_no_buy_button(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await tg.send(user, "/menu")
    assert not any(c.startswith("pay_") for c in tg.screen(user).callbacks)


# ---- invoices ------------------------------------------------------------------------------------------


async def test_buying_a_week_sends_a_stars_invoice(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/start")
    await tg.press(user, "pay_buy:week")
    call = tg.api.last("sendInvoice")
    assert call is not None
    p = call.params
    assert p["chat_id"] == user.id and p["currency"] == "XTR" and p.get("provider_token", "") == ""
    assert [price["amount"] for price in p["prices"]] == [250]
    parsed = parse_payload(p["payload"])
    assert parsed is not None and (parsed.plan, parsed.days, parsed.stars, parsed.user_id) == ("week", 7, 250, user.id)
    assert "subscription_period" not in p
    invoice = tg.api.messages(user.id)[-1]["invoice"]
    assert (invoice["currency"], invoice["total_amount"]) == ("XTR", 250)


async def test_buying_the_monthly_plan_sends_a_subscription_link(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/buy")  # someone new gets the welcome with the offer; then /buy shows the plans
    assert tg.screen(user).has("access.welcome", "payments.offer")
    await tg.send(user, "/buy")
    assert tg.screen(user).has("payments.plans_title")
    await tg.press(user, "pay_buy:month")
    call = tg.api.last("createInvoiceLink")
    assert call is not None and call.params["subscription_period"] == MONTH_S
    assert call.params["currency"] == "XTR" and call.params["prices"][0]["amount"] == 750
    assert parse_payload(call.params["payload"]) is not None
    screen = tg.screen(user)
    assert screen.has("payments.subscribe_text")
    link = screen.raw["reply_markup"]["inline_keyboard"][0][0]["url"]
    invoice = tg.api.invoice_for_link(link)
    assert invoice is not None and invoice["subscription_period"] == MONTH_S and invoice["total_amount"] == 750


async def test_an_unknown_plan_button_sends_no_invoice(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/start")
    await tg.press(user, "pay_buy:year")
    assert not tg.api.calls_of("sendInvoice") and not tg.api.calls_of("createInvoiceLink")
    assert "payments.plan_gone" in tg.toast_keys()


# ---- pre-checkout --------------------------------------------------------------------------------------


async def test_pre_checkout_accepts_a_matching_payment(tg: Telegram, user: TgUser) -> None:
    assert await pre_checkout(tg, user, WEEK, 250) == {"ok": True, "error_message": None}
    assert await pre_checkout(tg, user, MONTH, 750) == {"ok": True, "error_message": None}


@pytest.mark.parametrize(
    ("invoice_payload", "amount", "currency", "refusal"),
    [
        (WEEK, 249, "XTR", "wrong_amount"),
        (WEEK, 750, "XTR", "wrong_amount"),
        (WEEK, 250, "USD", "wrong_currency"),
        (payload("week", 7, 250, 700_000_002), 250, "XTR", "not_yours"),
        (payload("year", 365, 2000, 700_000_001), 2000, "XTR", "unknown_plan"),
        ("not-a-payload", 250, "XTR", "unknown_plan"),
        (payload("week", 7, 100, 700_000_001), 100, "XTR", "plan_changed"),
    ],
)
async def test_pre_checkout_refusals(tg: Telegram, user: TgUser, invoice_payload: str, amount: int, currency: str,
                                     refusal: str) -> None:
    answer = await pre_checkout(tg, user, invoice_payload, amount, currency)
    assert answer is not None and answer["ok"] is False
    assert answer["error_message"] == tg_text(f"payments.refuse_{refusal}")


async def test_pre_checkout_refuses_a_banned_user(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    answer = await pre_checkout(tg, user, WEEK, 250)
    assert answer == {"ok": False, "error_message": tg_text("payments.refuse_banned")}


async def test_pre_checkout_is_answered_inline_in_the_webhook_reply(tg: Telegram, user: TgUser) -> None:
    update = {"update_id": 77_000_001, "pre_checkout_query": {
        "id": "inline-q", "from": user.as_dict(), "currency": "XTR", "total_amount": 250, "invoice_payload": WEEK}}
    response = await tg.client.post("/telegram/webhook", json=update,
                                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET})
    body = response.json()
    assert body["method"] == "answerPreCheckoutQuery" and str(body["ok"]).lower() == "true"
    assert body["pre_checkout_query_id"] == "inline-q"


def tg_text(key: str) -> str:
    from core.i18n import t

    return t("en", key)


# ---- granting ------------------------------------------------------------------------------------------


async def test_a_successful_payment_grants_the_plan_days(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await tg.send(user, "/start")
    await pay(tg, user, WEEK, 250, "charge-week-1")
    now = datetime.now(UTC)
    row = await users.get(db, user.id)
    assert row is not None and row.status == "active" and _close(row.expires_at, now + timedelta(days=7))
    [p] = await payment_rows(db, user.id)
    assert (p["plan"], p["days"], p["stars"], p["currency"], p["telegram_payment_charge_id"]) == (
        "week", 7, 250, "XTR", "charge-week-1")
    assert p["refunded_at"] is None and p["expires_after"] is not None
    screen = tg.screen(user)
    assert screen.has("access.granted") and screen.callbacks == ["login", "back_to_menu"]
    notice = tg.screen(admin)
    assert notice.has("payments.admin_notice") and notice.callbacks == [f"admin_user:{user.id}"]


async def test_a_payment_extends_from_the_current_expiry(tg: Telegram, db, user: TgUser) -> None:
    later = datetime.now(UTC) + timedelta(days=10)
    await users.set_access(db, user.id, status="active", expires_at=later)
    await pay(tg, user, WEEK, 250, "charge-extend")
    assert _close(await _expiry(db, user.id), later + timedelta(days=7), 2)
    assert tg.screen(user).has("payments.extended")


async def test_an_expired_user_is_extended_from_now(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) - timedelta(days=5))
    await pay(tg, user, WEEK, 250, "charge-expired")
    assert _close(await _expiry(db, user.id), datetime.now(UTC) + timedelta(days=7))


async def test_the_same_payment_delivered_twice_grants_once(tg: Telegram, db, user: TgUser) -> None:
    update = paid_update(user, WEEK, 250, "charge-twice")
    assert (await tg.post_update(update)).status_code == 200
    first = await _expiry(db, user.id)
    assert (await tg.post_update(update)).status_code == 200  # redelivered update: same update_id
    replay = paid_update(user, WEEK, 250, "charge-twice")  # a replayed message under a new update_id
    assert replay["update_id"] != update["update_id"]
    assert (await tg.post_update(replay)).status_code == 200
    assert await _expiry(db, user.id) == first
    assert len(await payment_rows(db, user.id)) == 1
    assert len([c for c in sent_to(tg.api, user.id) if "access.granted" in _keys(c)]) == 1
    assert len([c for c in sent_to(tg.api, ADMIN_ID) if "payments.admin_notice" in _keys(c)]) == 1


def _keys(call: Any) -> set[str]:
    from tests.harness import message_keys

    return message_keys(str(call.params.get("text", "")))


async def test_two_concurrent_deliveries_grant_once(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=1))
    before = await _expiry(db, user.id)
    assert before is not None
    updates = [paid_update(user, WEEK, 250, "charge-race") for _ in range(2)]
    responses = await asyncio.gather(*(tg.post_update(u) for u in updates))
    assert [r.status_code for r in responses] == [200, 200]
    assert len(await payment_rows(db, user.id)) == 1
    assert _close(await _expiry(db, user.id), before + timedelta(days=7), 2)


async def test_concurrent_grants_on_two_connections_grant_once(database_url: str, db, user: TgUser) -> None:
    """Below the webhook's per-user isolation: two transactions race on the unique charge id."""
    import psycopg

    from services.payments import PaidCharge, record_payment

    await users.set_access(db, user.id, status="active", expires_at=datetime.now(UTC) + timedelta(days=1))
    before = await _expiry(db, user.id)
    assert before is not None
    charge = PaidCharge(user.id, "charge-two-conns", "", "XTR", 250, WEEK)
    conns = [await psycopg.AsyncConnection.connect(database_url, autocommit=True) for _ in range(2)]
    try:
        results = await asyncio.gather(*(record_payment(c, charge) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sum(r is not None for r in results) == 1
    assert len(await payment_rows(db, user.id)) == 1
    assert _close(await _expiry(db, user.id), before + timedelta(days=7), 2)


async def test_a_banned_payer_is_recorded_but_not_granted(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await users.set_access(db, user.id, status="banned", expires_at=None)
    await pay(tg, user, WEEK, 250, "charge-banned")
    row = await users.get(db, user.id)
    assert row is not None and row.status == "banned" and row.expires_at is None
    [p] = await payment_rows(db, user.id)
    assert p["expires_after"] is None
    assert tg.screen(user).has("payments.not_granted")
    assert tg.screen(admin).has("payments.admin_notice_failed")


# ---- subscriptions -------------------------------------------------------------------------------------


async def _subscribe(tg: Telegram, user: TgUser, charge: str = "sub-1") -> datetime:
    renews = datetime.now(UTC) + timedelta(days=30)
    await pay(tg, user, MONTH, 750, charge, recurring=True, first=True, expires=renews)
    return renews


async def test_a_subscription_renews_and_each_renewal_extends(tg: Telegram, db, user: TgUser) -> None:
    renews = await _subscribe(tg, user)
    assert _close(await _expiry(db, user.id), datetime.now(UTC) + timedelta(days=30))
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and sub.charge_id == "sub-1" and not sub.canceled and _close(sub.renews_at, renews, 2)
    await tg.send(user, "/menu")
    screen = tg.screen(user)
    assert screen.has("payments.menu_until", "payments.menu_renews")
    assert "pay_cancel" in screen.callbacks and "pay_plans" not in screen.callbacks

    first_expiry = await _expiry(db, user.id)
    assert first_expiry is not None
    await pay(tg, user, MONTH, 750, "sub-2", recurring=True, first=False, expires=renews + timedelta(days=30))
    assert _close(await _expiry(db, user.id), first_expiry + timedelta(days=30), 2)
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and sub.charge_id == "sub-1" and sub.last_charge_id == "sub-2"
    assert _close(sub.renews_at, renews + timedelta(days=30), 2)
    rows = await payment_rows(db, user.id)
    assert [r["recurring"] for r in rows] == [True, True]
    # A renewal is redelivered: still one grant.
    await pay(tg, user, MONTH, 750, "sub-2", recurring=True, first=False, expires=renews + timedelta(days=30))
    assert len(await payment_rows(db, user.id)) == 2


async def test_buying_the_subscription_twice_is_refused(tg: Telegram, user: TgUser) -> None:
    await _subscribe(tg, user)
    await tg.press(user, "pay_buy:month")
    assert "payments.already_subscribed" in tg.toast_keys()
    assert not tg.api.calls_of("createInvoiceLink")


async def test_cancelling_stops_renewal_and_keeps_the_paid_days(tg: Telegram, db, user: TgUser) -> None:
    await _subscribe(tg, user)
    paid_until = await _expiry(db, user.id)
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel")
    screen = tg.screen(user)
    assert screen.has("payments.cancel_confirm") and screen.callbacks == ["pay_cancel_ok", "back_to_menu"]
    await tg.press(user, "pay_cancel_ok")
    call = tg.api.last("editUserStarSubscription")
    assert call is not None
    assert (call.params["user_id"], call.params["telegram_payment_charge_id"]) == (user.id, "sub-1")
    assert call.params["is_canceled"] is True
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and sub.canceled
    assert await _expiry(db, user.id) == paid_until
    screen = tg.screen(user)
    assert screen.has("payments.cancelled", "payments.menu_renewal_off")
    assert "pay_cancel" not in screen.callbacks and "pay_plans" in screen.callbacks
    # Pressed again (an old confirmation): nothing more is asked of Telegram.
    await tg.press(user, "pay_cancel_ok")
    assert len(tg.api.calls_of("editUserStarSubscription")) == 1
    assert "payments.nothing_to_cancel" in tg.toast_keys()


async def test_a_failed_cancel_keeps_the_subscription_renewing(tg: Telegram, db, user: TgUser) -> None:
    await _subscribe(tg, user)
    tg.api.fail_next("editUserStarSubscription", error_code=400, description="Bad Request: SUBSCRIPTION_NOT_FOUND")
    await tg.press(user, "pay_cancel_ok")
    assert "payments.cancel_failed" in tg.toast_keys()
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and not sub.canceled


# ---- refunds -------------------------------------------------------------------------------------------


async def _payment_id(db, charge: str) -> int:
    cur = await db.execute("SELECT id FROM payments WHERE telegram_payment_charge_id = %(c)s", {"c": charge})
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_refund_takes_the_days_back_once(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    later = datetime.now(UTC) + timedelta(days=20)
    await users.set_access(db, user.id, status="active", expires_at=later)
    await pay(tg, user, WEEK, 250, "charge-refund")
    pid = await _payment_id(db, "charge-refund")
    await tg.press(admin, f"admin_user:{user.id}")
    card = tg.screen(admin)
    assert card.has("payments.card_totals", "payments.card_payment") and f"admin_refund:{pid}" in card.callbacks
    await tg.press(admin, f"admin_refund:{pid}")
    confirm = tg.screen(admin)
    assert confirm.has("payments.refund_confirm")
    assert confirm.callbacks == [f"admin_refund_ok:{pid}", f"admin_user:{user.id}"]
    await tg.press(admin, f"admin_refund_ok:{pid}")
    [call] = tg.api.calls_of("refundStarPayment")
    assert (call.params["user_id"], call.params["telegram_payment_charge_id"]) == (user.id, "charge-refund")
    assert _close(await _expiry(db, user.id), later, 2)
    [p] = await payment_rows(db, user.id)
    assert p["refunded_at"] is not None and p["refunded_by"] == ADMIN_ID
    assert "payments.refund_done" in tg.toast_keys()
    assert "payments.refunded_until" in tg.all_keys(user)
    card = tg.screen(admin)
    assert card.has("payments.card_payment_refunded_until") and f"admin_refund:{pid}" not in card.callbacks
    # Refunding twice is refused, and Telegram is not asked again.
    await tg.press(admin, f"admin_refund_ok:{pid}")
    await tg.press(admin, f"admin_refund:{pid}")
    assert len(tg.api.calls_of("refundStarPayment")) == 1
    assert "payments.already_refunded" in tg.toast_keys()
    assert _close(await _expiry(db, user.id), later, 2)


async def test_refund_never_goes_below_now_and_stops_access(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await users.create_pending(db, user.id, username=None, first_name="Ali", last_name=None, language_code="en")
    await pay(tg, user, WEEK, 250, "charge-short")
    await db.execute("UPDATE bot_users SET expires_at = now() + interval '2 days' WHERE user_id = %(u)s",
                     {"u": user.id})  # days were used up since
    pid = await _payment_id(db, "charge-short")
    await tg.press(admin, f"admin_refund_ok:{pid}")
    expiry = await _expiry(db, user.id)
    now = datetime.now(UTC)
    assert expiry is not None and expiry <= now and _close(expiry, now, 5)
    row = await users.get(db, user.id)
    assert row is not None and not row.allowed_at(now)


async def test_refunding_a_subscription_payment_cancels_its_renewal(tg: Telegram, db, user: TgUser,
                                                                    admin: TgUser) -> None:
    await _subscribe(tg, user)
    pid = await _payment_id(db, "sub-1")
    await tg.press(admin, f"admin_refund_ok:{pid}")
    assert tg.api.last("refundStarPayment") is not None
    call = tg.api.last("editUserStarSubscription")
    assert call is not None and call.params["is_canceled"] is True
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and sub.canceled


async def test_a_refused_refund_records_nothing(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await pay(tg, user, WEEK, 250, "charge-refused")
    before = await _expiry(db, user.id)
    pid = await _payment_id(db, "charge-refused")
    tg.api.fail_next("refundStarPayment", error_code=400, description="Bad Request: CHARGE_NOT_FOUND")
    await tg.press(admin, f"admin_refund_ok:{pid}")
    assert "payments.refund_failed" in tg.toast_keys()
    [p] = await payment_rows(db, user.id)
    assert p["refunded_at"] is None and await _expiry(db, user.id) == before


async def test_already_refunded_at_telegram_is_recorded(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await pay(tg, user, WEEK, 250, "charge-lost-answer")
    pid = await _payment_id(db, "charge-lost-answer")
    tg.api.fail_next("refundStarPayment", error_code=400, description="Bad Request: CHARGE_ALREADY_REFUNDED")
    await tg.press(admin, f"admin_refund_ok:{pid}")
    [p] = await payment_rows(db, user.id)
    assert p["refunded_at"] is not None


async def test_a_refund_reported_by_telegram_is_recorded_once(tg: Telegram, db, user: TgUser) -> None:
    later = datetime.now(UTC) + timedelta(days=20)
    await users.set_access(db, user.id, status="active", expires_at=later)
    await pay(tg, user, WEEK, 250, "charge-reported")
    message = paid_update(user, WEEK, 250, "x")["message"]
    del message["successful_payment"]
    message["refunded_payment"] = {"currency": "XTR", "total_amount": 250, "invoice_payload": WEEK,
                                   "telegram_payment_charge_id": "charge-reported"}
    for update_id in (88_000_001, 88_000_002):
        response = await tg.post_update({"update_id": update_id, "message": message})
        assert response.status_code == 200
    [p] = await payment_rows(db, user.id)
    assert p["refunded_at"] is not None and p["refunded_by"] is None
    assert _close(await _expiry(db, user.id), later, 2)
    refunded = [c for c in sent_to(tg.api, user.id) if "payments.refunded_until" in _keys(c)]
    assert len(refunded) == 1


async def test_refund_buttons_are_for_super_admins_only(tg: Telegram, db, user: TgUser) -> None:
    await pay(tg, user, WEEK, 250, "charge-forged")
    pid = await _payment_id(db, "charge-forged")
    await tg.press(user, f"admin_refund_ok:{pid}")
    assert not tg.api.calls_of("refundStarPayment")
    assert "common.not_allowed" in tg.toast_keys()
    [p] = await payment_rows(db, user.id)
    assert p["refunded_at"] is None


async def test_a_refund_of_an_unknown_payment(tg: Telegram, admin: TgUser) -> None:
    await tg.press(admin, "admin_refund_ok:424242")
    await tg.press(admin, "admin_refund:424242")
    assert not tg.api.calls_of("refundStarPayment")
    assert "payments.payment_not_found" in tg.toast_keys()


# ---- support, terms, statistics ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pending", "active", "banned"])
async def test_paysupport_and_terms_answer_everyone(tg: Telegram, db, user: TgUser, status: str) -> None:
    await users.set_access(db, user.id, status=status, expires_at=datetime.now(UTC) + timedelta(days=1))
    await tg.send(user, "/paysupport")
    assert tg.screen(user).has("payments.support")
    await tg.send(user, "/terms")
    assert tg.screen(user).has("payments.terms")


async def test_terms_button(tg: Telegram, user: TgUser) -> None:
    await tg.send(user, "/start")
    await tg.press(user, "pay_terms")
    assert tg.screen(user).has("payments.terms")


async def test_admin_stats_show_stars(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await pay(tg, user, WEEK, 250, "charge-stats-1")
    await pay(tg, user, WEEK, 250, "charge-stats-2")
    await _subscribe(tg, user, "charge-stats-sub")
    pid = await _payment_id(db, "charge-stats-2")
    await tg.press(admin, f"admin_refund_ok:{pid}")
    tg.api.clear_calls()
    await tg.press(admin, "admin_stats")
    photos = tg.api.calls_of("sendPhoto")
    assert len(photos) == 2
    assert "payments.stats_chart" in {k for c in photos for k in _caption_keys(c)}
    text = tg.screen(admin).text
    assert tg.screen(admin).has("admin.stats_title", "payments.stats_line")
    assert "earned 1000 in 3 payments" in text and "refunds 1 (250 ⭐)" in text and "renewing: 1" in text
    daily = await payments.stars_per_day(db, datetime.now(UTC))
    assert len(daily) == 30 and daily[-1] == 1000 and sum(daily[:-1]) == 0


def _caption_keys(call: Any) -> set[str]:
    from tests.harness import message_keys

    return message_keys(str(call.params.get("caption", "")))
