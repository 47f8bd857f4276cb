"""What Telegram sends about payments: the pre-checkout query, the successful payment (first, or a
subscription's renewal), a refund; and the user's cancelling of a renewal.

Registered whether or not PLANS is set: a subscription sold before PLANS was emptied still renews,
and its payments must still be granted (and its renewal cancellable). Without invoices none of these
updates ever arrives, so without PLANS the bot behaves as it always did.
"""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.methods import AnswerPreCheckoutQuery
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, PreCheckoutQuery
from psycopg_pool import AsyncConnectionPool

from core import bounds, plans
from core.i18n import Translator, person_language
from core.settings import Settings
from db import payments, users
from handlers import callbacks as cb
from handlers.admin.common import button, day, send_access_granted, translator_for
from handlers.menu import send_main_menu
from handlers.payments import callbacks as pcb
from handlers.payments.screens import refund_notice
from handlers.ui import show
from services import payments as service
from services.access import super_admin_ids

log = logging.getLogger(__name__)

# Telegram's answer when the Stars already went back (a refund whose answer was lost): the refund
# happened, so it is recorded like one that succeeded now.
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
# Payment messages reach their handler whatever the payer's standing (a payment is recorded even
# from someone banned since the pre-checkout: the admins are told, to refund it).
PAYMENT = {"payment": True}


async def pre_checkout(query: PreCheckoutQuery, pool: AsyncConnectionPool,
                       settings: Settings) -> AnswerPreCheckoutQuery:
    """Answered inline in the webhook's reply (Telegram gives 10 s): two short reads, no other call."""
    payer = query.from_user
    row = None
    subscribed = False
    if payer.id in bounds.USER_ID:
        async with pool.connection() as conn:
            row = await users.get(conn, payer.id)
            subscribed = bool(await payments.renewing(conn, payer.id, datetime.now(UTC)))
    refusal = plans.checkout_refusal(
        settings.plans, payload=query.invoice_payload, currency=query.currency, amount=query.total_amount,
        payer_id=payer.id, payer_banned=row is not None and row.status == "banned", payer_subscribed=subscribed,
    )
    if refusal is None:
        return query.answer(ok=True)
    log.info("pre-checkout of %s refused: %s", payer.id, refusal.value)
    tr = Translator(person_language(row, settings.default_language, payer.language_code))
    return query.answer(ok=False, error_message=tr(f"payments.refuse_{refusal.value}"))


def _charge(message: Message) -> service.PaidCharge:
    paid = message.successful_payment
    assert paid is not None and message.from_user is not None
    expires = paid.subscription_expiration_date
    return service.PaidCharge(
        user_id=message.from_user.id, charge_id=paid.telegram_payment_charge_id,
        provider_charge_id=paid.provider_payment_charge_id or "", currency=paid.currency,
        amount=paid.total_amount, payload=paid.invoice_payload, recurring=bool(paid.is_recurring),
        first_recurring=bool(paid.is_first_recurring),
        subscription_expires=datetime.fromtimestamp(expires, UTC) if expires else None,
    )


async def successful_payment(message: Message, bot: Bot, pool: AsyncConnectionPool, settings: Settings,
                             tr: Translator) -> None:
    charge = _charge(message)
    async with pool.connection() as conn:
        grant = await service.record_payment(conn, charge)
    if grant is None:
        log.info("payment %s delivered again: already granted", charge.charge_id)
        return
    if grant.refund_due:
        await _refund_cancelled_renewal(message, bot, pool, settings, tr, grant)
        return
    if not grant.granted:
        await message.answer(tr("payments.not_granted", support=html.escape(settings.support_contact)))
    elif grant.became_allowed:
        await send_access_granted(bot, settings, grant.row)
    else:
        await message.answer(tr("payments.extended", date=day(grant.row.expires_at)))
    await _notify_admins(bot, pool, settings, grant, renewal=charge.recurring and not charge.first_recurring)


async def _notify_admins(bot: Bot, pool: AsyncConnectionPool, settings: Settings, grant: service.Grant, *,
                         renewal: bool) -> None:
    async with pool.connection() as conn:
        admin_ids = await super_admin_ids(conn, settings)
        admins = {admin_id: await users.language_of(conn, admin_id) for admin_id in admin_ids}
    payment, row = grant.payment, grant.row
    for admin_id, admin_row in admins.items():
        tr = translator_for(admin_row, settings)
        if grant.refund_due:
            text = tr("payments.admin_notice_renewal_refunded", name=html.escape(row.display_name), id=row.user_id,
                      stars=payment.stars, plan=html.escape(payment.plan))
        elif not grant.granted:
            text = tr.n("payments.admin_notice_failed", payment.stars, stars=payment.stars, id=row.user_id)
        else:
            key = "payments.admin_notice_renewal" if renewal else "payments.admin_notice"
            text = tr.n(key, payment.stars, name=html.escape(row.display_name), id=row.user_id, stars=payment.stars,
                        plan=html.escape(payment.plan), date=day(row.expires_at))
        markup = InlineKeyboardMarkup(inline_keyboard=[[
            button(tr("access.btn_open_card"), cb.AdminUser(id=row.user_id)),
        ]])
        try:
            await bot.send_message(admin_id, text, reply_markup=markup)
        except TelegramAPIError as exc:  # an admin who never opened the bot
            log.warning("payment notice not delivered to admin %s: %s", admin_id, type(exc).__name__)


async def refund_at_telegram(bot: Bot, user_id: int, charge_id: str) -> None:
    """refundStarPayment; Telegram's "refunded already" (an earlier answer was lost) counts as done."""
    try:
        await bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge_id)
    except TelegramBadRequest as exc:
        if ALREADY_REFUNDED not in exc.message:
            raise service.RefundRefused(exc.message) from None


async def _refund_cancelled_renewal(message: Message, bot: Bot, pool: AsyncConnectionPool, settings: Settings,
                                    tr: Translator, grant: service.Grant) -> None:
    """The user cancelled this subscription, yet a renewal came (charged before Telegram took the
    cancel, or a cancel Telegram refused): its Stars go back at once, and the user and admins are told."""
    payment = grant.payment

    async def call(user_id: int, charge_id: str) -> None:
        await refund_at_telegram(bot, user_id, charge_id)

    try:
        async with pool.connection() as conn:
            result = await service.refund(conn, payment.id, admin_id=None, call=call)
    except (service.RefundRefused, TelegramAPIError) as exc:
        # Recorded without a grant: the admins are asked to refund it from the card, as for a banned payer.
        log.warning("renewal %s of a cancelled subscription not refunded: %s", payment.id, type(exc).__name__)
        await message.answer(tr("payments.not_granted", support=html.escape(settings.support_contact)))
        await _notify_admins(bot, pool, settings, replace(grant, refund_due=False), renewal=True)
        return
    if result.outcome is not service.RefundOutcome.refunded:
        return
    try:  # and no more: the renewal's own charge names the subscription that still charges
        await bot.edit_user_star_subscription(user_id=payment.user_id,
                                              telegram_payment_charge_id=payment.telegram_payment_charge_id,
                                              is_canceled=True)
    except TelegramAPIError as exc:
        log.warning("subscription renewed by %s not cancelled: %s", payment.id, type(exc).__name__)
    await message.answer(refund_notice(tr, payment.stars, result.row, datetime.now(UTC), renewal=True))
    await _notify_admins(bot, pool, settings, grant, renewal=True)


async def refunded_payment(message: Message, pool: AsyncConnectionPool, tr: Translator) -> None:
    """A refund Telegram reports: ours (already recorded: nothing to do) or one made elsewhere."""
    refunded = message.refunded_payment
    assert refunded is not None
    async with pool.connection() as conn:
        result = await service.refund_reported(conn, refunded.telegram_payment_charge_id)
    if result.outcome is service.RefundOutcome.refunded and result.payment is not None:
        await message.answer(refund_notice(tr, result.payment.stars, result.row, datetime.now(UTC)))
    elif result.outcome is service.RefundOutcome.not_found:
        log.warning("refund reported for a payment not recorded here")


# ---- cancelling a renewal ---------------------------------------------------------------------------


async def ask_cancel(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                     is_admin: bool) -> None:
    async with pool.connection() as conn:
        subs = await payments.renewing(conn, query.from_user.id, datetime.now(UTC))
        row = await users.get(conn, query.from_user.id)
    if not subs:
        await query.answer(tr("payments.nothing_to_cancel"), show_alert=True)
        await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                             is_admin=is_admin)
        return
    await query.answer()
    until = row.expires_at if row is not None else subs[-1].renews_at
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("payments.btn_cancel_yes"), pcb.PayCancelConfirm())],
        [button(tr("payments.btn_back"), cb.BackToMenu())],
    ])
    await show(query, tr("payments.cancel_confirm", date=day(until)), markup)


async def cancel(query: CallbackQuery, bot: Bot, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                 is_admin: bool) -> None:
    user_id = query.from_user.id

    async def stop_renewal(uid: int, charge_id: str) -> None:
        await bot.edit_user_star_subscription(user_id=uid, telegram_payment_charge_id=charge_id, is_canceled=True)

    try:
        async with pool.connection() as conn:
            outcome = await service.cancel_renewal(conn, user_id, call=stop_renewal)
            row = await users.get(conn, user_id)
    except TelegramAPIError as exc:
        log.warning("renewal of %s not cancelled: %s", user_id, type(exc).__name__)
        await query.answer(tr("payments.cancel_failed"), show_alert=True)
        return
    if outcome is service.CancelOutcome.nothing:
        await query.answer(tr("payments.nothing_to_cancel"), show_alert=True)
        notice = None
    else:
        await query.answer()
        notice = tr("payments.cancelled", date=day(row.expires_at if row else None))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=user_id, is_admin=is_admin,
                         notice=notice)


def make_router() -> Router:
    router = Router(name=__name__)
    router.pre_checkout_query.register(pre_checkout)
    router.message.register(successful_payment, F.successful_payment, flags=PAYMENT)
    router.message.register(refunded_payment, F.refunded_payment, flags=PAYMENT)
    # A renewal can outlive the user's access by a moment (a failed charge): they may still cancel.
    router.callback_query.register(ask_cancel, pcb.PayCancel.filter(), flags={"allow_expired": True})
    router.callback_query.register(cancel, pcb.PayCancelConfirm.filter(), flags={"allow_expired": True})
    return router
