"""Stars payments: granting access once per payment, refunds, and cancelling a subscription's renewal.

Telegram may deliver one `successful_payment` more than once (a redelivered update, a replayed
message, two web replicas at once). The payment row is inserted first, keyed by Telegram's charge id,
in the same transaction that extends the access: whoever inserts it grants, everyone else finds it
taken and grants nothing. Refunds lock the payment row, so a second refund sees the first one.

The Bot API calls (refundStarPayment, editUserStarSubscription) are passed in as plain callables:
this module knows nothing of aiogram, and the tests of its rules need no Telegram.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from psycopg import AsyncConnection

from core import plans
from db import payments, users
from db.payments import Payment, Subscription
from db.rows import BotUser
from services import broadcast

log = logging.getLogger(__name__)

# (user id, telegram_payment_charge_id) -> None; raises RefundRefused when Telegram says no.
TelegramCall = Callable[[int, str], Awaitable[None]]


class RefundRefused(Exception):
    """Telegram refused the call (the description says why); nothing was recorded."""


@dataclass(frozen=True, slots=True)
class PaidCharge:
    """A `successful_payment` as Telegram reported it."""

    user_id: int
    charge_id: str
    provider_charge_id: str
    currency: str
    amount: int
    payload: str
    recurring: bool = False
    first_recurring: bool = False
    subscription_expires: datetime | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    payment: Payment
    row: BotUser
    granted: bool  # days were added (not a banned buyer, not a payload we did not write)
    became_allowed: bool  # send "access granted" (otherwise "extended")
    # A renewal of a subscription the user cancelled: nothing granted; the caller refunds it
    # (`refund(..., admin_id=None)`) and tells the user.
    refund_due: bool = False


def renewed_subscription(subs: list[Subscription], period_end: datetime | None) -> Subscription | None:
    """Which of the user's subscriptions of a plan a renewal belongs to. Telegram's renewal names no
    subscription, only the end of the period it pays for; the period it follows ended 30 days
    before, so the subscription whose paid period ends nearest to that is the one renewed. Without an
    end date, the one renewing last. None when the user has none (history this database never saw)."""
    if not subs:
        return None
    if period_end is None:
        return max(subs, key=lambda s: (s.renews_at is not None, s.renews_at or datetime.min.replace(tzinfo=UTC)))
    previous_end = period_end - timedelta(days=plans.SUBSCRIPTION_DAYS)

    def distance(sub: Subscription) -> tuple[float, bool]:
        gap = abs((sub.renews_at - previous_end).total_seconds()) if sub.renews_at else float("inf")
        return gap, sub.canceled  # a tie goes to the one still renewing

    return min(subs, key=distance)


async def record_payment(conn: AsyncConnection, charge: PaidCharge, now: datetime | None = None) -> Grant | None:
    """Record the payment and extend the buyer's access by the paid days from max(now, expiry); None
    when this charge was recorded before (nothing is granted twice)."""
    now = now or datetime.now(UTC)
    payload = plans.parse_payload(charge.payload)
    days = payload.days if payload else 0
    async with conn.transaction():
        payment = await payments.insert(
            conn, user_id=charge.user_id, charge_id=charge.charge_id, provider_charge_id=charge.provider_charge_id,
            plan=payload.plan if payload else "?", days=days, stars=charge.amount, currency=charge.currency,
            recurring=charge.recurring,
        )
        if payment is None:
            return None
        row = await users.lock_or_create(conn, charge.user_id)
        refund_due = False
        if charge.recurring and payload is not None:
            refund_due = await _file_under_subscription(conn, charge, payment, payload.plan)
        was_allowed = row.allowed_at(now)
        granted = days > 0 and row.status != "banned" and not refund_due
        if granted:
            before = row.expires_at
            expiry = plans.extended(before, row.status, now, days)
            row = await users.update_access(
                conn, charge.user_id, status="active", expires_at=expiry,
                granted_notified_at=row.granted_notified_at if was_allowed else now,
            )
            await payments.set_effect(conn, payment.id, before=before, after=expiry)
        refreshed = await payments.get(conn, payment.id)
    assert refreshed is not None
    if refund_due:
        log.info("payment %s of user %s renews a cancelled subscription: to be refunded", payment.id, charge.user_id)
    elif not granted:
        log.warning("payment %s of user %s recorded without a grant (banned or foreign payload)",
                    payment.id, charge.user_id)
    return Grant(refreshed, row, granted, granted and not was_allowed, refund_due)


async def _file_under_subscription(conn: AsyncConnection, charge: PaidCharge, payment: Payment, plan: str) -> bool:
    """Start or renew the subscription the payment belongs to, and link the payment to it; True when
    it renews one the user cancelled (the user said no more charges: the payment is to be refunded)."""
    if charge.first_recurring:
        await payments.start_subscription(conn, charge.user_id, plan=plan, charge_id=charge.charge_id,
                                          renews_at=charge.subscription_expires)
        await payments.link_subscription(conn, payment.id, charge.charge_id)
        return False
    subs = await payments.lock_subscriptions(conn, charge.user_id, plan)
    sub = renewed_subscription(subs, charge.subscription_expires)
    if sub is None:  # a subscription this database never saw start (lost history, a restored backup)
        await payments.start_subscription(conn, charge.user_id, plan=plan, charge_id=charge.charge_id,
                                          renews_at=charge.subscription_expires)
        await payments.link_subscription(conn, payment.id, charge.charge_id)
        return False
    await payments.link_subscription(conn, payment.id, sub.charge_id)
    if sub.canceled:
        return True
    await payments.renew_subscription(conn, sub.charge_id, last_charge_id=charge.charge_id,
                                      renews_at=charge.subscription_expires)
    return False


class RefundOutcome(StrEnum):
    refunded = "refunded"
    already = "already"  # refunded before: nothing done
    not_found = "not_found"


@dataclass(frozen=True, slots=True)
class Refund:
    outcome: RefundOutcome
    payment: Payment | None = None
    row: BotUser | None = None
    cancel_charge: str | None = None  # a subscription whose renewal should stop at Telegram too


async def _take_back(conn: AsyncConnection, payment: Payment, *, by: int | None, now: datetime) -> Refund:
    """Inside the caller's transaction, with the payment locked: the bought days come off the
    buyer's access (never below now) and the refund is recorded."""
    row = await users.lock_or_create(conn, payment.user_id)
    # Only days that were granted come off: a payment recorded without a grant (a banned buyer, a
    # renewal of a cancelled subscription) gave none. A grant always records the expiry it set.
    granted_days = payment.days if payment.expires_after is not None else 0
    expiry = plans.taken_back(row.expires_at, now, granted_days) if granted_days else row.expires_at
    allowed_after = row.status == "active" and (expiry is None or expiry > now)
    row = await users.update_access(
        conn, payment.user_id, status=row.status, expires_at=expiry,
        granted_notified_at=row.granted_notified_at if allowed_after else None,
    )
    done = await payments.mark_refunded(conn, payment.id, by=by, expires_after=expiry, now=now)
    cancel = None
    sub = await payments.get_subscription(conn, payment.subscription_id) if payment.subscription_id else None
    if sub is not None and payment.telegram_payment_charge_id in (sub.charge_id, sub.last_charge_id):
        # A refunded subscription is not charged again: the refund undoes the purchase.
        cancel = sub.charge_id if sub.renews(now) else None
        await payments.set_canceled(conn, sub.charge_id)
    return Refund(RefundOutcome.refunded, done, row, cancel)


async def refund(conn: AsyncConnection, payment_id: int, *, admin_id: int | None, call: TelegramCall,
                 now: datetime | None = None) -> Refund:
    """An admin's refund (`admin_id`), or the bot's own of a renewal the user had cancelled (None):
    Telegram returns the Stars (`call`), then the days are taken back. The
    payment stays locked across the call, so a second refund waits and finds it refunded. When
    Telegram refuses, `RefundRefused` propagates and nothing is recorded."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        payment = await payments.lock(conn, payment_id)
        if payment is None:
            return Refund(RefundOutcome.not_found)
        if payment.refunded_at is not None:
            return Refund(RefundOutcome.already, payment)
        await call(payment.user_id, payment.telegram_payment_charge_id)
        result = await _take_back(conn, payment, by=admin_id, now=now)
    await _stop_if_expired(conn, result, now)
    return result


async def refund_reported(conn: AsyncConnection, charge_id: str, now: datetime | None = None) -> Refund:
    """Telegram reported a refund (`refunded_payment`): one made elsewhere (Telegram's support), or
    the echo of ours. Recorded once, like any refund."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        payment = await payments.lock_by_charge(conn, charge_id)
        if payment is None:
            return Refund(RefundOutcome.not_found)
        if payment.refunded_at is not None:
            return Refund(RefundOutcome.already, payment)
        result = await _take_back(conn, payment, by=None, now=now)
    await _stop_if_expired(conn, result, now)
    return result


async def _stop_if_expired(conn: AsyncConnection, result: Refund, now: datetime) -> None:
    if result.row is not None and not result.row.allowed_at(now):
        await broadcast.stop(conn, result.row.user_id)


class CancelOutcome(StrEnum):
    canceled = "canceled"
    nothing = "nothing"  # no subscription that still renews


async def cancel_renewal(conn: AsyncConnection, user_id: int, *, call: TelegramCall,
                         now: datetime | None = None) -> CancelOutcome:
    """Stop the next renewals of every subscription the user has; the days already paid stay.
    Telegram first, one subscription at a time: one it refuses still renews and its row says so
    (the error propagates), the ones it accepted before stay cancelled."""
    now = now or datetime.now(UTC)
    subs = await payments.renewing(conn, user_id, now)
    if not subs:
        return CancelOutcome.nothing
    for sub in subs:
        await call(user_id, sub.charge_id)
        await payments.set_canceled(conn, sub.charge_id)
    return CancelOutcome.canceled
