"""Stars payments in the sandbox (the whole app in sandbox mode on a live port): an invoice shows with
a Pay button, paying sends the pre-checkout query and then the successful payment through the real
webhook, a subscription renews from the page, and an admin's refund reaches the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.harness import message_keys
from tests.payments_helpers import PLANS
from tests.sandbox_server import SANDBOX_ADMIN_ID, LiveSandbox, live_sandbox

USER_ID = 700_456_001
USER: dict[str, Any] = {"id": USER_ID, "first_name": "Payer", "language_code": "en"}
ADMIN: dict[str, Any] = {"id": SANDBOX_ADMIN_ID, "first_name": "Admin", "language_code": "en"}


@pytest.fixture
def live(database_url: str, redis_url: str) -> Iterator[LiveSandbox]:
    with live_sandbox(database_url, redis_url, plans=PLANS) as server:
        yield server


def _chat(c: httpx.Client, chat_id: int) -> list[dict[str, Any]]:
    return list(c.get(f"/sandbox/api/chat/{chat_id}").json()["messages"])


def _press(c: httpx.Client, user: dict[str, Any], data: str) -> dict[str, Any]:
    """Press the newest button with this data in the user's chat, as the page does."""
    for m in reversed(_chat(c, user["id"])):
        if any(b.get("callback_data") == data for row in m.get("inline", []) for b in row):
            answer = c.post("/sandbox/api/press", json={"user": user, "message_id": m["id"], "data": data}).json()
            assert answer["ok"], answer
            return dict(answer)
    raise AssertionError(f"no button {data} in the chat of {user['id']}")


def _button_data(c: httpx.Client, user: dict[str, Any], prefix: str) -> str:
    for m in reversed(_chat(c, user["id"])):
        for row in m.get("inline", []):
            for b in row:
                if str(b.get("callback_data", "")).startswith(prefix):
                    return str(b["callback_data"])
    raise AssertionError(f"no {prefix} button for {user['id']}")


def _row(database_url: str, sql: str, **params: Any) -> Any:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchone()


def _expiry(database_url: str, user_id: int) -> datetime:
    row = _row(database_url, "SELECT expires_at FROM bot_users WHERE user_id = %(u)s", u=user_id)
    assert row is not None and row[0] is not None
    return row[0]


def test_buy_pay_refund_in_the_sandbox(live: LiveSandbox, database_url: str) -> None:
    with live.client() as c:
        c.post("/sandbox/api/send", json={"user": USER, "text": "/start"})
        _press(c, USER, "pay_buy:week")
        invoice = next(m for m in reversed(_chat(c, USER_ID)) if m.get("invoice"))
        assert invoice["invoice"]["stars"] == 250 and invoice["invoice"]["paid"] is False
        answer = c.post("/sandbox/api/pay", json={"user": USER, "message_id": invoice["id"]}).json()
        assert answer["ok"] and answer["webhook_status"] == 200

        assert abs(_expiry(database_url, USER_ID) - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
        messages = _chat(c, USER_ID)
        assert next(m for m in messages if m["id"] == invoice["id"])["invoice"]["paid"] is True
        payment = next(m["payment"] for m in messages if m.get("payment"))
        assert payment["stars"] == 250 and payment["refunded"] is False
        assert any("access.granted" in message_keys(m["html"]) for m in messages if m["from_bot"])
        again = c.post("/sandbox/api/pay", json={"user": USER, "message_id": invoice["id"]})
        assert again.status_code == 400  # Telegram shows a receipt, not the form, for a paid invoice

        # The admin was told; the card refunds it through the emulator.
        _press(c, ADMIN, f"admin_user:{USER_ID}")
        _press(c, ADMIN, _button_data(c, ADMIN, "admin_refund:"))
        _press(c, ADMIN, _button_data(c, ADMIN, "admin_refund_ok:"))
        refunded = _row(database_url, "SELECT refunded_at FROM payments WHERE user_id = %(u)s", u=USER_ID)
        assert refunded is not None and refunded[0] is not None
        payment = next(m["payment"] for m in _chat(c, USER_ID) if m.get("payment"))
        assert payment["refunded"] is True
        # The user is told what the refund did to the access (they had none before this week).
        assert any("payments.refunded_ended" in message_keys(m["html"]) for m in _chat(c, USER_ID) if m["from_bot"])


def test_subscribe_renew_cancel_in_the_sandbox(live: LiveSandbox, database_url: str) -> None:
    with live.client() as c:
        c.post("/sandbox/api/send", json={"user": USER, "text": "/start"})
        _press(c, USER, "pay_buy:month")
        link = next(b["url"] for m in reversed(_chat(c, USER_ID)) for row in m.get("inline", []) for b in row
                    if str(b.get("url", "")).startswith("https://t.me/$"))
        assert c.post("/sandbox/api/pay", json={"user": USER, "link": link}).json()["ok"]
        first = _expiry(database_url, USER_ID)
        payment = next(m["payment"] for m in _chat(c, USER_ID) if m.get("payment"))
        assert payment["recurring"] and payment["renewable"]

        assert c.post("/sandbox/api/renew", json={"user": USER, "charge_id": payment["charge_id"]}).json()["ok"]
        assert abs(_expiry(database_url, USER_ID) - (first + timedelta(days=30))) < timedelta(seconds=5)
        count = _row(database_url, "SELECT count(*) FROM payments WHERE user_id = %(u)s", u=USER_ID)
        assert count[0] == 2

        c.post("/sandbox/api/send", json={"user": USER, "text": "/menu"})
        _press(c, USER, "pay_cancel")
        _press(c, USER, "pay_cancel_ok")
        canceled = _row(database_url, "SELECT canceled FROM star_subscriptions WHERE user_id = %(u)s", u=USER_ID)
        assert canceled[0] is True
        refused = c.post("/sandbox/api/renew", json={"user": USER, "charge_id": payment["charge_id"]})
        assert refused.status_code == 400


def _subscribe(c: httpx.Client) -> tuple[str, dict[str, Any]]:
    """Subscribe to the monthly plan through its link; the link and the payment as the page shows it."""
    c.post("/sandbox/api/send", json={"user": USER, "text": "/start"})
    _press(c, USER, "pay_buy:month")
    link = next(b["url"] for m in reversed(_chat(c, USER_ID)) for row in m.get("inline", []) for b in row
                if str(b.get("url", "")).startswith("https://t.me/$"))
    assert c.post("/sandbox/api/pay", json={"user": USER, "link": link}).json()["ok"]
    return link, next(m["payment"] for m in _chat(c, USER_ID) if m.get("payment"))


def test_the_old_subscribe_link_is_refused_while_the_subscription_renews(live: LiveSandbox, database_url: str) -> None:
    with live.client() as c:
        link, _ = _subscribe(c)
        answer = c.post("/sandbox/api/pay", json={"user": USER, "link": link}).json()
        assert answer["ok"] and answer["paid"] is False
        assert "payments.refuse_already_subscribed" in message_keys(answer["error_message"])
        toasts = c.get(f"/sandbox/api/chat/{USER_ID}").json()["toasts"]
        assert toasts[-1]["alert"] and toasts[-1]["text"] == answer["error_message"]
        assert _row(database_url, "SELECT count(*) FROM payments WHERE user_id = %(u)s", u=USER_ID)[0] == 1
        assert _row(database_url, "SELECT count(*) FROM star_subscriptions WHERE user_id = %(u)s", u=USER_ID)[0] == 1


def test_a_renewal_that_crossed_the_cancel_is_refunded_in_the_sandbox(live: LiveSandbox, database_url: str) -> None:
    with live.client() as c:
        _, payment = _subscribe(c)
        paid_until = _expiry(database_url, USER_ID)
        c.post("/sandbox/api/send", json={"user": USER, "text": "/menu"})
        _press(c, USER, "pay_cancel")
        _press(c, USER, "pay_cancel_ok")
        renewed = c.post("/sandbox/api/renew", json={"user": USER, "charge_id": payment["charge_id"],
                                                     "charged_before_cancel": True})
        assert renewed.json()["ok"], renewed.text
        renewal = [m["payment"] for m in _chat(c, USER_ID) if m.get("payment")][-1]
        assert renewal["charge_id"] != payment["charge_id"] and renewal["refunded"] is True
        row = _row(database_url, "SELECT refunded_at, refunded_by, subscription_id FROM payments"
                                 " WHERE telegram_payment_charge_id = %(c)s", c=renewal["charge_id"])
        assert row[0] is not None and row[1] is None and row[2] == payment["charge_id"]
        assert _expiry(database_url, USER_ID) == paid_until
        assert any("payments.renewal_refunded_until" in message_keys(m["html"])
                   for m in _chat(c, USER_ID) if m["from_bot"])


def test_a_refused_pre_checkout_shows_telegrams_popup(live: LiveSandbox, database_url: str) -> None:
    with live.client() as c:
        c.post("/sandbox/api/send", json={"user": USER, "text": "/start"})
        _press(c, USER, "pay_buy:week")
        invoice = next(m for m in reversed(_chat(c, USER_ID)) if m.get("invoice"))
        with psycopg.connect(database_url) as conn:
            conn.execute("UPDATE bot_users SET status = 'banned' WHERE user_id = %(u)s", {"u": USER_ID})
        answer = c.post("/sandbox/api/pay", json={"user": USER, "message_id": invoice["id"]}).json()
        assert answer["ok"] and answer["paid"] is False
        assert "payments.refuse_banned" in message_keys(answer["error_message"])
        toasts = c.get(f"/sandbox/api/chat/{USER_ID}").json()["toasts"]
        assert toasts[-1]["alert"] and toasts[-1]["text"] == answer["error_message"]
        assert _row(database_url, "SELECT count(*) FROM payments")[0] == 0


def test_bad_pay_requests(live: LiveSandbox) -> None:
    with live.client() as c:
        assert c.post("/sandbox/api/pay", json={"user": USER, "link": "https://t.me/$nope"}).status_code == 400
        assert c.post("/sandbox/api/pay", json={"user": USER, "message_id": 999}).status_code == 400
        assert c.post("/sandbox/api/pay", json={"user": USER}).status_code == 400
        assert c.post("/sandbox/api/renew", json={"user": USER, "charge_id": "x"}).status_code == 400
