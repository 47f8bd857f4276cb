"""Every subscription a user holds, through the webhook (docs/payments.md): a second recurring plan is
refused at pre-checkout while one renews, cancelling reaches every renewing subscription at Telegram,
a renewal of a cancelled subscription is refunded by itself, and a refund says what it left of the
access (to the user and on the admin's card).

The fake Bot API records every call; tests assert on rows, Bot API calls, callback ids and message keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from db import payments, users
from db.payments import Subscription
from services.payments import renewed_subscription
from tests.harness import Telegram, TgUser, message_keys, sent_to
from tests.payments_helpers import PLANS, pay, payload, payment_rows, pre_checkout

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


async def _subscribe(tg: Telegram, user: TgUser, charge: str, renews: datetime) -> None:
    await pay(tg, user, MONTH, 750, charge, recurring=True, first=True, expires=renews)


async def _payment(db, charge: str) -> dict[str, Any]:
    cur = await db.execute("SELECT row_to_json(p) FROM payments p WHERE telegram_payment_charge_id = %(c)s",
                           {"c": charge})
    row = await cur.fetchone()
    assert row is not None
    return dict(row[0])


def _keys_sent(tg: Telegram, chat_id: int) -> list[set[str]]:
    return [message_keys(str(c.params.get("text", ""))) for c in sent_to(tg.api, chat_id)
            if c.method == "sendMessage"]


# ---- one subscription at a time -------------------------------------------------------------------


async def test_pre_checkout_refuses_a_second_subscription_while_one_renews(tg: Telegram, db, user: TgUser) -> None:
    await _subscribe(tg, user, "sub-1", datetime.now(UTC) + timedelta(days=30))
    answer = await pre_checkout(tg, user, MONTH, 750)
    assert answer is not None and answer["ok"] is False
    assert "payments.refuse_already_subscribed" in message_keys(str(answer["error_message"]))
    # A one-off plan is still sold to a subscriber (its days add up).
    answer = await pre_checkout(tg, user, WEEK, 250)
    assert answer is not None and answer["ok"] is True
    # Once renewal is cancelled, subscribing again is allowed.
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    answer = await pre_checkout(tg, user, MONTH, 750)
    assert answer is not None and answer["ok"] is True


async def test_the_refusal_is_in_the_payers_language(tg: Telegram, db, user: TgUser) -> None:
    await _subscribe(tg, user, "sub-1", datetime.now(UTC) + timedelta(days=30))
    await db.execute("UPDATE bot_users SET language = 'ru' WHERE user_id = %(u)s", {"u": user.id})
    answer = await pre_checkout(tg, user, MONTH, 750)
    assert answer is not None and answer["ok"] is False
    assert "payments.refuse_already_subscribed" in message_keys(str(answer["error_message"]), "ru")


async def test_every_subscription_is_kept_and_each_renews_its_own_row(tg: Telegram, db, user: TgUser) -> None:
    # Two subscriptions that both passed pre-checkout (paid at once, or before the refusal existed).
    first = datetime.now(UTC) + timedelta(days=30)
    second = first + timedelta(days=3)
    await _subscribe(tg, user, "sub-1", first)
    await _subscribe(tg, user, "sub-2", second)
    subs = {s.charge_id: s for s in await payments.subscriptions(db, user.id)}
    assert set(subs) == {"sub-1", "sub-2"} and not any(s.canceled for s in subs.values())

    await pay(tg, user, MONTH, 750, "sub-1-r1", recurring=True, expires=first + timedelta(days=30))
    one, two = await payments.get_subscription(db, "sub-1"), await payments.get_subscription(db, "sub-2")
    assert one is not None and one.last_charge_id == "sub-1-r1" and _close(one.renews_at, first + timedelta(days=30), 2)
    assert two is not None and two.last_charge_id == "sub-2" and _close(two.renews_at, second, 2)
    assert (await _payment(db, "sub-1-r1"))["subscription_id"] == "sub-1"
    assert (await _payment(db, "sub-2"))["subscription_id"] == "sub-2"


async def test_cancel_stops_every_renewing_subscription_at_telegram(tg: Telegram, db, user: TgUser) -> None:
    now = datetime.now(UTC)
    await _subscribe(tg, user, "sub-1", now + timedelta(days=30))
    await _subscribe(tg, user, "sub-2", now + timedelta(days=31))
    paid_until = await _expiry(db, user.id)
    await tg.send(user, "/menu")
    assert "pay_cancel" in tg.screen(user).callbacks
    await tg.press(user, "pay_cancel")
    await tg.press(user, "pay_cancel_ok")
    calls = tg.api.calls_of("editUserStarSubscription")
    assert sorted(c.params["telegram_payment_charge_id"] for c in calls) == ["sub-1", "sub-2"]
    assert all(c.params["is_canceled"] is True and c.params["user_id"] == user.id for c in calls)
    assert all(s.canceled for s in await payments.subscriptions(db, user.id))
    assert await payments.renewing(db, user.id, datetime.now(UTC)) == []
    assert await _expiry(db, user.id) == paid_until
    screen = tg.screen(user)
    assert screen.has("payments.cancelled", "payments.menu_renewal_off") and "pay_cancel" not in screen.callbacks


async def test_a_cancel_telegram_refuses_half_way_keeps_that_one_renewing(tg: Telegram, db, user: TgUser) -> None:
    now = datetime.now(UTC)
    await _subscribe(tg, user, "sub-1", now + timedelta(days=30))
    await _subscribe(tg, user, "sub-2", now + timedelta(days=31))
    tg.api.fail_next("editUserStarSubscription", error_code=400, description="Bad Request: SUBSCRIPTION_NOT_FOUND")
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    assert "payments.cancel_failed" in tg.toast_keys()
    # The menu still offers the cancel (something still renews); pressing again finishes the job.
    assert [s.charge_id for s in await payments.renewing(db, user.id, datetime.now(UTC))]
    await tg.press(user, "pay_cancel_ok")
    assert await payments.renewing(db, user.id, datetime.now(UTC)) == []


# ---- a renewal of a cancelled subscription ----------------------------------------------------------


async def test_a_renewal_after_cancel_is_refunded_and_the_user_told(tg: Telegram, db, user: TgUser,
                                                                   admin: TgUser) -> None:
    renews = datetime.now(UTC) + timedelta(days=30)
    await _subscribe(tg, user, "sub-1", renews)
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    paid_until = await _expiry(db, user.id)
    tg.api.clear_calls()

    # Telegram charged before the cancel reached it; the renewal arrives after.
    await pay(tg, user, MONTH, 750, "sub-1-r1", recurring=True, expires=renews + timedelta(days=30))
    [refund] = tg.api.calls_of("refundStarPayment")
    assert (refund.params["user_id"], refund.params["telegram_payment_charge_id"]) == (user.id, "sub-1-r1")
    row = await _payment(db, "sub-1-r1")
    assert row["refunded_at"] is not None and row["refunded_by"] is None and row["subscription_id"] == "sub-1"
    assert row["expires_after"] is None  # nothing was granted
    assert await _expiry(db, user.id) == paid_until
    sub = await payments.get_subscription(db, "sub-1")
    assert sub is not None and sub.canceled and sub.last_charge_id == "sub-1"  # the period did not move on
    stop = tg.api.last("editUserStarSubscription")
    assert stop is not None and stop.params["telegram_payment_charge_id"] == "sub-1-r1"
    assert stop.params["is_canceled"] is True
    told = _keys_sent(tg, user.id)
    assert any("payments.renewal_refunded_until" in k for k in told)
    assert not any({"payments.extended", "access.granted"} & k for k in told)
    assert any("payments.admin_notice_renewal_refunded" in k for k in _keys_sent(tg, admin.id))

    # Delivered again: nothing more is refunded or said.
    await pay(tg, user, MONTH, 750, "sub-1-r1", recurring=True, expires=renews + timedelta(days=30))
    assert len(tg.api.calls_of("refundStarPayment")) == 1
    assert len([k for k in _keys_sent(tg, user.id) if "payments.renewal_refunded_until" in k]) == 1


async def test_a_renewal_after_cancel_with_access_over_says_it_ended(tg: Telegram, db, user: TgUser) -> None:
    renews = datetime.now(UTC) + timedelta(days=30)
    await _subscribe(tg, user, "sub-1", renews)
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    await db.execute("UPDATE bot_users SET expires_at = now() - interval '1 hour' WHERE user_id = %(u)s",
                     {"u": user.id})
    await pay(tg, user, MONTH, 750, "sub-1-r1", recurring=True, expires=renews + timedelta(days=30))
    assert any("payments.renewal_refunded_ended" in k for k in _keys_sent(tg, user.id))


async def test_a_renewal_refund_telegram_refuses_is_left_to_the_admins(tg: Telegram, db, user: TgUser,
                                                                      admin: TgUser) -> None:
    renews = datetime.now(UTC) + timedelta(days=30)
    await _subscribe(tg, user, "sub-1", renews)
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    paid_until = await _expiry(db, user.id)
    tg.api.fail_next("refundStarPayment", error_code=400, description="Bad Request: CHARGE_NOT_FOUND")
    await pay(tg, user, MONTH, 750, "sub-1-r1", recurring=True, expires=renews + timedelta(days=30))
    row = await _payment(db, "sub-1-r1")
    assert row["refunded_at"] is None and await _expiry(db, user.id) == paid_until
    assert any("payments.not_granted" in k for k in _keys_sent(tg, user.id))
    assert any("payments.admin_notice_failed" in k for k in _keys_sent(tg, admin.id))
    # The card offers the refund.
    await tg.press(admin, f"admin_user:{user.id}")
    assert f"admin_refund:{row['id']}" in tg.screen(admin).callbacks


async def test_a_renewal_of_the_subscription_bought_after_a_cancel_is_granted(tg: Telegram, db,
                                                                              user: TgUser) -> None:
    now = datetime.now(UTC)
    await _subscribe(tg, user, "sub-old", now + timedelta(days=30))
    await tg.send(user, "/menu")
    await tg.press(user, "pay_cancel_ok")
    await _subscribe(tg, user, "sub-new", now + timedelta(days=40))
    before = await _expiry(db, user.id)
    assert before is not None
    await pay(tg, user, MONTH, 750, "sub-new-r1", recurring=True, expires=now + timedelta(days=70))
    assert not tg.api.calls_of("refundStarPayment")
    assert _close(await _expiry(db, user.id), before + timedelta(days=30), 2)
    assert (await _payment(db, "sub-new-r1"))["subscription_id"] == "sub-new"


def _sub(charge: str, renews: datetime | None, canceled: bool = False) -> Subscription:
    return Subscription(user_id=1, plan="month", charge_id=charge, last_charge_id=charge, renews_at=renews,
                        canceled=canceled, updated_at=datetime(2025, 1, 1, tzinfo=UTC))


def test_a_renewal_belongs_to_the_subscription_whose_period_it_follows() -> None:
    t = datetime(2025, 3, 1, tzinfo=UTC)
    a, b = _sub("a", t), _sub("b", t + timedelta(days=10), canceled=True)
    assert renewed_subscription([], t) is None
    assert renewed_subscription([a, b], t + timedelta(days=30)) is a
    assert renewed_subscription([a, b], t + timedelta(days=40, hours=2)) is b
    # Same period end: the one still renewing.
    d = _sub("d", t)
    assert renewed_subscription([_sub("c", t, canceled=True), d], t + timedelta(days=30)) is d
    # No end date reported: the one renewing last; one without a date loses.
    assert renewed_subscription([a, b, _sub("e", None)], None) is b
    assert renewed_subscription([_sub("e", None), a], t + timedelta(days=30)) is a


# ---- what a refund did to access --------------------------------------------------------------------


async def _refund(tg: Telegram, db, admin: TgUser, charge: str) -> int:
    pid = int((await _payment(db, charge))["id"])
    await tg.press(admin, f"admin_refund_ok:{pid}")
    return pid


async def test_a_refund_that_leaves_days_states_the_new_end(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    later = datetime.now(UTC) + timedelta(days=20)
    await users.set_access(db, user.id, status="active", expires_at=later)
    await pay(tg, user, WEEK, 250, "charge-1")
    await _refund(tg, db, admin, "charge-1")
    assert _close(await _expiry(db, user.id), later, 2)
    [notice] = [k for k in _keys_sent(tg, user.id) if k & {"payments.refunded_until", "payments.refunded_ended"}]
    assert notice == {"payments.refunded_until"}
    assert later.strftime("%Y-%m-%d") in sent_to(tg.api, user.id)[-1].params["text"]
    card = tg.screen(admin)
    assert card.has("payments.card_payment_refunded_until") and not card.has("payments.card_payment_refunded_ended")


async def test_a_refund_that_ends_access_says_so(tg: Telegram, db, user: TgUser, admin: TgUser) -> None:
    await users.create_pending(db, user.id, username=None, first_name="Ali", last_name=None, language_code="en")
    await pay(tg, user, WEEK, 250, "charge-1")
    await _refund(tg, db, admin, "charge-1")
    row = await users.get(db, user.id)
    assert row is not None and not row.allowed_at(datetime.now(UTC))
    assert any("payments.refunded_ended" in k for k in _keys_sent(tg, user.id))
    [p] = await payment_rows(db, user.id)
    assert p["refund_expires_after"] is not None
    assert tg.screen(admin).has("payments.card_payment_refunded_ended")


async def test_a_refund_of_a_permanent_users_payment_says_access_is_unchanged(tg: Telegram, db, user: TgUser,
                                                                             admin: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await pay(tg, user, WEEK, 250, "charge-1")
    await _refund(tg, db, admin, "charge-1")
    assert await _expiry(db, user.id) is None
    assert any("payments.refunded_permanent" in k for k in _keys_sent(tg, user.id))
    assert tg.screen(admin).has("payments.card_payment_refunded")


async def test_a_refund_reported_by_telegram_states_the_new_end(tg: Telegram, db, user: TgUser) -> None:
    from tests.payments_helpers import paid_update

    await users.create_pending(db, user.id, username=None, first_name="Ali", last_name=None, language_code="en")
    await pay(tg, user, WEEK, 250, "charge-reported")
    message = paid_update(user, WEEK, 250, "x")["message"]
    del message["successful_payment"]
    message["refunded_payment"] = {"currency": "XTR", "total_amount": 250, "invoice_payload": WEEK,
                                   "telegram_payment_charge_id": "charge-reported"}
    assert (await tg.post_update({"update_id": 89_000_001, "message": message})).status_code == 200
    assert any("payments.refunded_ended" in k for k in _keys_sent(tg, user.id))
