"""Buying access: the plan list, invoices, /paysupport and /terms (only with PLANS)."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, LabeledPrice, Message
from psycopg_pool import AsyncConnectionPool

from core import plans
from core.i18n import Translator
from core.settings import Settings
from db import payments
from db.rows import BotUser
from handlers.payments import callbacks as pcb
from handlers.payments.screens import plans_screen
from handlers.ui import show

# Open to users without access (the point is to buy it); the banned are still refused by the gate.
OPEN = {"allow_expired": True}


def _allowed(user_row: BotUser | None, is_admin: bool) -> bool:
    return is_admin or (user_row is not None and user_row.allowed_at(datetime.now(UTC)))


async def open_plans(query: CallbackQuery, settings: Settings, tr: Translator, is_admin: bool,
                     user_row: BotUser | None) -> None:
    await query.answer()
    await show(query, *plans_screen(settings, tr, with_back=_allowed(user_row, is_admin)))


async def buy_command(message: Message, settings: Settings, tr: Translator, is_admin: bool,
                      user_row: BotUser | None) -> None:
    await show(message, *plans_screen(settings, tr, with_back=_allowed(user_row, is_admin)))


async def buy(query: CallbackQuery, callback_data: pcb.PayBuy, bot: Bot, pool: AsyncConnectionPool,
              settings: Settings, tr: Translator, is_admin: bool, user_row: BotUser | None) -> None:
    plan = plans.find_plan(settings.plans, callback_data.plan)
    if plan is None:  # PLANS changed since the button was drawn, or forged data
        await query.answer(tr("payments.plan_gone"), show_alert=True)
        await show(query, *plans_screen(settings, tr, with_back=_allowed(user_row, is_admin)))
        return
    user_id = query.from_user.id
    if plan.recurring:
        async with pool.connection() as conn:
            renewing = await payments.renewing(conn, user_id, datetime.now(UTC))
        if renewing:  # the pre-checkout answer refuses it too (an invoice link sent earlier stays payable)
            await query.answer(tr("payments.already_subscribed"), show_alert=True)
            return
    await query.answer()
    payload = plans.payload_for(plan, user_id).encode()
    prices = [LabeledPrice(label=tr.n("payments.invoice_label", plan.days, days=plan.days), amount=plan.stars)]
    if plan.recurring:
        # Only an invoice link can carry a subscription period (sendInvoice cannot).
        link = await bot.create_invoice_link(
            title=tr("payments.invoice_title_recurring"),
            description=tr("payments.invoice_description_recurring"),
            payload=payload, currency=plans.CURRENCY, prices=prices, provider_token="",
            subscription_period=plans.SUBSCRIPTION_PERIOD_S,
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text=tr("payments.btn_subscribe", stars=plan.stars), url=link),
        ]])
        await bot.send_message(user_id, tr("payments.subscribe_text", stars=plan.stars), reply_markup=markup)
        return
    await bot.send_invoice(
        user_id,
        title=tr.n("payments.invoice_title", plan.days, days=plan.days),
        description=tr.n("payments.invoice_description", plan.days, days=plan.days),
        payload=payload, currency=plans.CURRENCY, prices=prices, provider_token="",
    )


async def terms_button(query: CallbackQuery, settings: Settings, tr: Translator) -> None:
    await query.answer()
    assert query.from_user is not None and query.bot is not None
    await query.bot.send_message(query.from_user.id,
                                 tr("payments.terms", support=html.escape(settings.support_contact)))


async def terms(message: Message, settings: Settings, tr: Translator) -> None:
    await message.answer(tr("payments.terms", support=html.escape(settings.support_contact)))


async def paysupport(message: Message, settings: Settings, tr: Translator) -> None:
    assert message.from_user is not None
    await message.answer(tr("payments.support", support=html.escape(settings.support_contact),
                            id=message.from_user.id))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(open_plans, pcb.PayPlans.filter(), flags=OPEN)
    router.callback_query.register(buy, pcb.PayBuy.filter(), flags=OPEN)
    router.callback_query.register(terms_button, pcb.PayTerms.filter(), flags={"public": True})
    router.message.register(buy_command, Command("buy"), flags=OPEN)
    # Telegram asks every bot that takes payments to answer these two, to anyone who paid.
    router.message.register(paysupport, Command("paysupport"), flags={"public": True})
    router.message.register(terms, Command("terms"), flags={"public": True})
    return router
