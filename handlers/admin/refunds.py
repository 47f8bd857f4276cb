"""A super admin refunds a payment from the user card: asked, confirmed, done at Telegram, the user
told, and the card drawn again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.settings import Settings
from db import payments
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button, translator_for
from handlers.admin.panel import redraw_card
from handlers.payments import callbacks as pcb
from handlers.payments.flow import refund_at_telegram
from handlers.payments.screens import refund_notice
from handlers.ui import show
from services import payments as service

log = logging.getLogger(__name__)


async def ask_refund(query: CallbackQuery, callback_data: pcb.AdminRefund, pool: AsyncConnectionPool,
                     tr: Translator) -> None:
    async with pool.connection() as conn:
        payment = await payments.get(conn, callback_data.id)
    if payment is None:
        await query.answer(tr("payments.payment_not_found"), show_alert=True)
        return
    if payment.refunded_at is not None:
        await query.answer(tr("payments.already_refunded"), show_alert=True)
        return
    await query.answer()
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("payments.btn_refund_yes"), pcb.AdminRefundConfirm(id=payment.id))],
        [button(tr("admin.btn_back"), cb.AdminUser(id=payment.user_id))],
    ])
    await show(query, tr.n("payments.refund_confirm", payment.days, id=payment.id, stars=payment.stars,
                           user=payment.user_id, days=payment.days), markup)


async def refund(query: CallbackQuery, callback_data: pcb.AdminRefundConfirm, bot: Bot,
                 pool: AsyncConnectionPool, settings: Settings, tr: Translator) -> None:
    async def call(user_id: int, charge_id: str) -> None:
        await refund_at_telegram(bot, user_id, charge_id)

    try:
        async with pool.connection() as conn:
            result = await service.refund(conn, callback_data.id, admin_id=query.from_user.id, call=call)
    except service.RefundRefused as exc:
        await query.answer(tr("payments.refund_failed", reason=str(exc)[:120]), show_alert=True)
        return
    if result.outcome is service.RefundOutcome.not_found:
        await query.answer(tr("payments.payment_not_found"), show_alert=True)
        return
    if result.outcome is service.RefundOutcome.already:
        await query.answer(tr("payments.already_refunded"), show_alert=True)
    else:
        assert result.payment is not None
        await query.answer(tr("payments.refund_done", id=result.payment.id))
        await _after_refund(bot, pool, settings, result)
    assert result.payment is not None
    await redraw_card(query, pool, tr, result.payment.user_id)


async def _after_refund(bot: Bot, pool: AsyncConnectionPool, settings: Settings, result: service.Refund) -> None:
    payment = result.payment
    assert payment is not None
    if result.cancel_charge is not None:
        try:
            await bot.edit_user_star_subscription(
                user_id=payment.user_id, telegram_payment_charge_id=result.cancel_charge, is_canceled=True)
        except TelegramAPIError as exc:  # recorded as cancelled here; the admin can see it on the card
            log.warning("renewal of %s not cancelled after a refund: %s", payment.user_id, type(exc).__name__)
    tr = translator_for(result.row, settings)
    try:
        await bot.send_message(payment.user_id, refund_notice(tr, payment.stars, result.row, datetime.now(UTC)))
    except TelegramAPIError as exc:
        log.info("refund notice to %s not delivered: %s", payment.user_id, type(exc).__name__)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.middleware(SuperAdminOnly())
    router.callback_query.register(ask_refund, pcb.AdminRefund.filter())
    router.callback_query.register(refund, pcb.AdminRefundConfirm.filter())
    return router
