"""The super admin's side of payments: the user card's payments and refunds, and the Stars figures."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime, timedelta

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.settings import Settings
from db import payments
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button, day, translator_for
from handlers.payments import callbacks as pcb
from handlers.payments.flow import refund_at_telegram
from handlers.payments.screens import refund_notice
from handlers.ui import show
from services import payments as service

log = logging.getLogger(__name__)

CARD_PAYMENTS = 5  # the newest payments listed on a card
CARD_REFUNDS = 3  # of which at most this many get a refund button
STATS_DAYS = 30


async def card_section(conn: AsyncConnection, tr: Translator,
                       user_id: int) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    """Lines and refund buttons for the user card; nothing for a user who never paid."""
    totals = await payments.user_totals(conn, user_id)
    if totals.payments == 0:
        return [], []
    lines = [tr.n("payments.card_totals", totals.stars, count=totals.payments, stars=totals.stars,
                  refunded=totals.refunded)]
    now = datetime.now(UTC)
    subs = await payments.subscriptions(conn, user_id)
    renewing = [s for s in subs if s.renews(now)]
    for sub in sorted(renewing, key=lambda s: (s.renews_at or now, s.charge_id)):
        lines.append(tr("payments.card_sub_renews", date=day(sub.renews_at)))
    if not renewing and any(s.canceled for s in subs):
        lines.append(tr("payments.card_sub_off"))
    rows: list[list[InlineKeyboardButton]] = []
    for p in await payments.recent(conn, user_id, CARD_PAYMENTS):
        lines.append(_payment_line(tr, p))
        if p.refunded_at is None and len(rows) < CARD_REFUNDS:
            rows.append([button(tr("payments.btn_refund", id=p.id, stars=p.stars), pcb.AdminRefund(id=p.id))])
    return lines, rows


def _payment_line(tr: Translator, p: payments.Payment) -> str:
    """A payment on the card; a refunded one says what the refund left of the access, as the user
    was told: until when, or that it ended then."""
    fields = {"id": p.id, "date": day(p.paid_at), "plan": html.escape(p.plan), "stars": p.stars}
    if p.refunded_at is None:
        return tr("payments.card_payment", **fields)
    if p.refund_expires_after is None:  # permanent access, untouched by the refund
        return tr("payments.card_payment_refunded", **fields)
    if p.refund_expires_after > p.refunded_at:
        return tr("payments.card_payment_refunded_until", until=day(p.refund_expires_after), **fields)
    return tr("payments.card_payment_refunded_ended", until=day(p.refund_expires_after), **fields)


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
    await _redraw_card(query, pool, tr, result.payment.user_id)


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


async def _redraw_card(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator, user_id: int) -> None:
    from handlers.admin.panel import card_screen

    async with pool.connection() as conn:
        screen = await card_screen(conn, tr, user_id)
    if screen is not None:
        await show(query, *screen)


async def stats_section(pool: AsyncConnectionPool, tr: Translator, now: datetime) -> tuple[str, list[int]]:
    """The Stars line of the statistics and the stars earned per day (for the chart)."""
    async with pool.connection() as conn:
        totals = await payments.totals_since(conn, now - timedelta(days=STATS_DAYS), now)
        daily = await payments.stars_per_day(conn, now, STATS_DAYS)
    line = tr.n("payments.stats_line", totals.payments, stars=totals.stars, payments=totals.payments,
                refunds=totals.refunds, refunded=totals.refunded_stars, subscriptions=totals.subscriptions)
    return line, daily


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.middleware(SuperAdminOnly())
    router.callback_query.register(ask_refund, pcb.AdminRefund.filter())
    router.callback_query.register(refund, pcb.AdminRefundConfirm.filter())
    return router
