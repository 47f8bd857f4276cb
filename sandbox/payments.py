"""Telegram's side of a Stars payment in the sandbox: the buyer presses Pay on an invoice (or opens
an invoice link), Telegram asks the bot with a pre-checkout query, and on "ok" takes the Stars and
posts the successful payment into the chat; a subscription renews every 30 days (here: when the page
asks). The updates go through the real webhook (sandbox.web); this module builds them and keeps the
emulator's record of the charges (which refundStarPayment and editUserStarSubscription then check).

Charges live in the emulator's memory: after a restart of the web process an old subscription can no
longer be renewed from the page (a new purchase works as before).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sandbox.botapi_payments import SUBSCRIPTION_PERIOD_S, PaymentsState
from sandbox.updates import BadInput


def find_invoice(api: PaymentsState, user: dict[str, Any], body: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The invoice the page wants paid: an invoice message in the user's chat (its id returned too,
    to mark it paid), or an invoice link from a button."""
    link = body.get("link")
    if link is not None:
        invoice = api.invoice_for_link(str(link))
        if invoice is None:
            raise BadInput("not an invoice link of this bot")
        return invoice, None
    try:
        message_id = int(body.get("message_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput("message_id or link is required") from None
    invoice = api.invoice(user["id"], message_id)
    if invoice is None:
        raise BadInput("that message is not an invoice")
    if invoice.get("paid"):
        raise BadInput("this invoice is paid already")
    return invoice, message_id


def pre_checkout_update(update_id: int, query_id: str, user: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "pre_checkout_query": {"id": query_id, "from": user, "currency": invoice["currency"],
                               "total_amount": invoice["total_amount"], "invoice_payload": invoice["payload"]},
    }


def new_query_id() -> str:
    return f"sbpcq{secrets.token_hex(8)}"


def take_payment(api: PaymentsState, user: dict[str, Any], invoice: dict[str, Any]) -> dict[str, Any]:
    """Record the charge and return the `successful_payment` message content."""
    charge_id = f"stxSB{secrets.token_hex(12)}"
    recurring = invoice.get("subscription_period") is not None
    expires = int(time.time()) + SUBSCRIPTION_PERIOD_S if recurring else None
    api.record_charge(charge_id, user_id=user["id"], amount=invoice["total_amount"], payload=invoice["payload"],
                      subscription=charge_id if recurring else None, expires=expires)
    return _paid(invoice["currency"], invoice["total_amount"], invoice["payload"], charge_id,
                 recurring=recurring, first=recurring, expires=expires)


def renew(api: PaymentsState, user: dict[str, Any], charge_id: str, *, charged_before_cancel: bool = False
          ) -> dict[str, Any]:
    """The next period of the subscription `charge_id` belongs to: a new charge, reported as a
    recurring payment (Telegram sends no pre-checkout query for a renewal). `charged_before_cancel`:
    a renewal Telegram charged just before the user's cancel reached it, delivered after it (the
    race the bot must answer with a refund), so a cancelled subscription may renew this once."""
    charge = api.charge(charge_id)
    root_id = str((charge or {}).get("subscription") or "")
    root = api.charge(root_id) if root_id else None
    if charge is None or root is None or root.get("user_id") != user["id"]:
        raise BadInput("no such subscription (the emulator forgets charges when the web process restarts)")
    if root.get("refunded") or (root.get("canceled") and not charged_before_cancel):
        raise BadInput("this subscription does not renew any more")
    expires = int(root.get("expires") or time.time()) + SUBSCRIPTION_PERIOD_S
    new_id = f"stxSB{secrets.token_hex(12)}"
    api.record_charge(new_id, user_id=user["id"], amount=int(root["amount"]), payload=str(root["payload"]),
                      subscription=root_id, expires=expires)
    api.set_subscription_expiry(root_id, expires)
    return _paid("XTR", int(root["amount"]), str(root["payload"]), new_id, recurring=True, first=False,
                 expires=expires)


def _paid(currency: str, amount: int, payload: str, charge_id: str, *, recurring: bool, first: bool,
          expires: int | None) -> dict[str, Any]:
    paid: dict[str, Any] = {"currency": currency, "total_amount": amount, "invoice_payload": payload,
                            "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
    if recurring:
        paid |= {"is_recurring": True, "is_first_recurring": first, "subscription_expiration_date": expires}
    return {"successful_payment": paid}


def payment_view(api: PaymentsState, msg: dict[str, Any]) -> dict[str, Any] | None:
    """How the page draws a payment service message: the Stars, and what became of the charge."""
    paid = msg.get("successful_payment")
    if not isinstance(paid, dict):
        return None
    charge_id = str(paid.get("telegram_payment_charge_id", ""))
    charge = api.charge(charge_id) or {}
    root = api.charge(str(charge.get("subscription") or "")) or {}
    return {
        "stars": paid.get("total_amount"), "charge_id": charge_id, "recurring": bool(paid.get("is_recurring")),
        "refunded": bool(charge.get("refunded")),
        "renewable": bool(root) and not root.get("canceled") and not root.get("refunded"),
        "canceled": bool(root.get("canceled")),
    }
