"""Telegram Stars in the fake Bot API: invoices, invoice links, pre-checkout answers, refunds and
subscription edits, checked the way Telegram checks them; mixed into sandbox.botapi_state.BotState.

"Telegram's side" of a payment (the buyer pressing Pay) is not a Bot API method: the sandbox page
and the tests play it, reading the invoice back (`invoice`, `invoice_for_link`), delivering the
pre-checkout query through the webhook, reading the bot's answer (`checkout_answer`) and recording
the charge (`record_charge`) before they deliver the successful payment.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from typing import TYPE_CHECKING, Any

from sandbox.botapi_state import ApiError, BotState, Upload

# The mixin sits before BotState in FakeBotAPI's bases; typed as one, it may call BotState's methods.
if TYPE_CHECKING:
    _Base = BotState
else:
    _Base = object

STARS = "XTR"
SUBSCRIPTION_PERIOD_S = 30 * 24 * 3600  # the only period Telegram accepts
LINK_PREFIX = "https://t.me/$"
MAX_STARS = 10000


def _invoice_fields(params: dict[str, Any]) -> dict[str, Any]:
    """Validate an invoice as sendInvoice and createInvoiceLink do; the parts the emulator keeps."""
    title = str(params.get("title") or "")
    description = str(params.get("description") or "")
    payload = str(params.get("payload") or "")
    currency = str(params.get("currency") or "")
    if not 1 <= len(title) <= 32:
        raise ApiError(400, "Bad Request: invoice title must be 1-32 characters")
    if not 1 <= len(description) <= 255:
        raise ApiError(400, "Bad Request: invoice description must be 1-255 characters")
    if not 1 <= len(payload.encode()) <= 128:
        raise ApiError(400, "Bad Request: INVOICE_PAYLOAD_INVALID")
    prices = params.get("prices")
    if not isinstance(prices, list) or not prices or not all(isinstance(p, dict) for p in prices):
        raise ApiError(400, "Bad Request: can't parse prices JSON object")
    amount = sum(int(p.get("amount") or 0) for p in prices)
    if currency == STARS:
        if params.get("provider_token"):
            raise ApiError(400, "Bad Request: PROVIDER_TOKEN_INVALID: Stars need an empty provider token")
        if len(prices) != 1:
            raise ApiError(400, "Bad Request: exactly one price is allowed in Telegram Stars")
        if not 1 <= amount <= MAX_STARS:
            raise ApiError(400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    elif not params.get("provider_token"):
        raise ApiError(400, "Bad Request: PAYMENT_PROVIDER_INVALID")
    period = params.get("subscription_period")
    if period not in (None, ""):
        if currency != STARS or str(period) != str(SUBSCRIPTION_PERIOD_S):
            raise ApiError(400, "Bad Request: SUBSCRIPTION_PERIOD_INVALID")
        period = SUBSCRIPTION_PERIOD_S
    else:
        period = None
    return {"title": title, "description": description, "payload": payload, "currency": currency,
            "total_amount": amount, "subscription_period": period}


def _slug(invoice: dict[str, Any]) -> str:
    # The link carries its invoice: no state to lose when the sandbox restarts.
    raw = json.dumps(invoice, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unslug(slug: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(slug + "=" * (-len(slug) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _as_bool(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class PaymentsState(_Base):
    """The Stars part of the fake Bot API (mixed in before BotState, which has chats and the lock)."""

    def __init__(self) -> None:
        super().__init__()
        self._handlers.update({
            "sendinvoice": self._send_invoice,
            "createinvoicelink": self._create_invoice_link,
            "answerprecheckoutquery": self._answer_pre_checkout,
            "refundstarpayment": self._refund_star_payment,
            "edituserstarsubscription": self._edit_star_subscription,
        })

    def _reset_state(self) -> None:
        with self._cond:
            super()._reset_state()
            self._checkout_answers: dict[str, dict[str, Any]] = {}
            # charge id -> what "Telegram" knows of it: user, amount, refunded, subscription state
            self._charges: dict[str, dict[str, Any]] = {}

    def _send_invoice(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat = self._required_chat(params)
        invoice = _invoice_fields(params)
        if invoice["subscription_period"] is not None:
            raise ApiError(400, "Bad Request: subscription invoices can only be sent as a link")
        shown = {k: invoice[k] for k in ("title", "description", "currency", "total_amount")}
        markup = params.get("reply_markup")
        content = {"invoice": shown | {"start_parameter": str(params.get("start_parameter") or "")},
                   "reply_markup": markup if isinstance(markup, dict) and markup else None,
                   "_pay": invoice}  # kept with the message, never shown to the bot
        return self._new_message(token, chat, content)

    def _create_invoice_link(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        return LINK_PREFIX + _slug(_invoice_fields(params))

    def _answer_pre_checkout(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        query_id = str(params.get("pre_checkout_query_id") or "")
        if not query_id:
            raise ApiError(400, "Bad Request: pre_checkout_query_id is empty")
        ok = _as_bool(params.get("ok"))
        error = params.get("error_message")
        if not ok and not error:
            raise ApiError(400, "Bad Request: error_message is required when ok is False")
        if query_id in self._checkout_answers:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        self._checkout_answers[query_id] = {"ok": ok, "error_message": error}
        return True

    def _refund_star_payment(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        charge_id = str(params.get("telegram_payment_charge_id") or "")
        if not charge_id:
            raise ApiError(400, "Bad Request: CHARGE_ID_EMPTY")
        # Lenient like the rest of the fake: a charge it did not make is accepted once (tests build
        # their own successful payments); a second refund of any charge is refused, as Telegram does.
        charge = self._charges.setdefault(charge_id, {"user_id": params.get("user_id"), "refunded": False})
        if charge.get("user_id") not in (None, params.get("user_id")):
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        if charge["refunded"]:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge["refunded"] = True
        return True

    def _edit_star_subscription(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        charge_id = str(params.get("telegram_payment_charge_id") or "")
        charge = self._charges.get(charge_id)
        if charge is not None and (charge.get("user_id") != params.get("user_id") or not charge.get("subscription")):
            raise ApiError(400, "Bad Request: SUBSCRIPTION_NOT_FOUND")
        if charge is None:
            charge = self._charges[charge_id] = {"user_id": params.get("user_id"), "refunded": False,
                                                 "subscription": charge_id}
        root = self._charges.get(str(charge["subscription"]), charge)
        root["canceled"] = _as_bool(params.get("is_canceled"))
        return True

    # ---- Telegram's side, for the sandbox page and the tests ------------------------------------

    def invoice(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The invoice a sendInvoice message carries (payload included), or None."""
        with self._cond:
            msg = self._stored(chat_id, message_id)
            return copy.deepcopy(msg.get("_pay")) if msg else None

    @staticmethod
    def invoice_for_link(link: str) -> dict[str, Any] | None:
        return _unslug(link[len(LINK_PREFIX):]) if link.startswith(LINK_PREFIX) else None

    def checkout_answer(self, query_id: str) -> dict[str, Any] | None:
        with self._cond:
            return copy.deepcopy(self._checkout_answers.get(query_id))

    def record_charge(self, charge_id: str, *, user_id: int, amount: int, payload: str,
                      subscription: str | None = None, expires: int | None = None) -> None:
        """A payment "Telegram" took; `subscription` is the first charge id of its subscription,
        `expires` the end of the period it paid for (unix time)."""
        with self._cond:
            self._charges[charge_id] = {"user_id": user_id, "amount": amount, "payload": payload,
                                        "refunded": False, "subscription": subscription, "canceled": False,
                                        "expires": expires}

    def set_subscription_expiry(self, charge_id: str, expires: int) -> None:
        with self._cond:
            if charge_id in self._charges:
                self._charges[charge_id]["expires"] = expires

    def charge(self, charge_id: str) -> dict[str, Any] | None:
        with self._cond:
            return copy.deepcopy(self._charges.get(charge_id))

