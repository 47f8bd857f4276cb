"""Telegram's side of a Stars payment, for the tests: the pre-checkout query and the successful
payment as Telegram delivers them to the webhook, and rows read back."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from typing import Any

import httpx

from tests.harness import Telegram, TgUser

PLANS = "week:7:250,month:30:750:recurring"
MONTH_S = 30 * 24 * 3600
_ids = itertools.count(50_000_000)


def payload(plan: str, days: int, stars: int, user_id: int) -> str:
    return f"tgc1:{plan}:{days}:{stars}:{user_id}"


async def pre_checkout(tg: Telegram, user: TgUser, invoice_payload: str, amount: int,
                       currency: str = "XTR") -> dict[str, Any] | None:
    """Deliver a pre_checkout_query; the bot's answer as the fake Bot API recorded it."""
    query_id = f"pcq{next(_ids)}"
    update = {
        "update_id": next(_ids),
        "pre_checkout_query": {"id": query_id, "from": user.as_dict(), "currency": currency,
                               "total_amount": amount, "invoice_payload": invoice_payload},
    }
    response = await tg.post_update(update)
    assert response.status_code == 200, response.text
    return tg.api.checkout_answer(query_id)


def paid_update(user: TgUser, invoice_payload: str, amount: int, charge_id: str, *, recurring: bool = False,
                first: bool = False, expires: datetime | None = None, update_id: int | None = None) -> dict[str, Any]:
    paid: dict[str, Any] = {"currency": "XTR", "total_amount": amount, "invoice_payload": invoice_payload,
                            "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
    if recurring:
        paid |= {"is_recurring": True, "is_first_recurring": first}
        if expires is not None:
            paid["subscription_expiration_date"] = int(expires.timestamp())
    return {
        "update_id": update_id if update_id is not None else next(_ids),
        "message": {
            "message_id": next(_ids) % 1_000_000,
            "date": int(time.time()),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "from": user.as_dict(),
            "successful_payment": paid,
        },
    }


async def pay(tg: Telegram, user: TgUser, invoice_payload: str, amount: int, charge_id: str,
              **kwargs: Any) -> httpx.Response:
    response = await tg.post_update(paid_update(user, invoice_payload, amount, charge_id, **kwargs))
    assert response.status_code == 200, response.text
    return response


async def payment_rows(db: Any, user_id: int) -> list[dict[str, Any]]:
    cur = await db.execute("SELECT row_to_json(p) FROM payments p WHERE user_id = %(u)s ORDER BY id", {"u": user_id})
    return [r[0] for r in await cur.fetchall()]
