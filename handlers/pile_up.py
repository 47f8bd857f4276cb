"""No pile-up: the screen where a user chooses what a round does in a group whose last message is still
the broadcast's previous post (core/pile_up.py, docs/bot.md "No pile-up")."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.pile_up import MODES
from core.settings import Settings
from db import configs
from handlers import callbacks as cb
from handlers.menu import button, require_login
from handlers.ui import show


def pile_up_keyboard(tr: Translator, current: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for mode in MODES:
        mark = "✅ " if mode == current else ""
        kb.row(button(mark + tr(f"pile_up.btn_{mode}"), cb.PileUp(mode=mode)))
    kb.row(button(tr("common.back"), cb.BackToMenu()))
    return kb.as_markup()


async def _screen(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator) -> None:
    async with pool.connection() as conn:
        config = await configs.get(conn, query.from_user.id)
    current = config.pile_up if config else "off"
    await show(query, tr("pile_up.title", current=tr(f"pile_up.btn_{current}")), pile_up_keyboard(tr, current))


async def open_screen(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                      is_admin: bool) -> None:
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    await query.answer()
    await _screen(query, pool, tr)


async def choose(query: CallbackQuery, callback_data: cb.PileUp, pool: AsyncConnectionPool, settings: Settings,
                 tr: Translator, is_admin: bool) -> None:
    if callback_data.mode not in MODES:  # forged: nothing is stored
        await query.answer(tr("pile_up.unknown"), show_alert=True)
        return
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    async with pool.connection() as conn:
        await configs.set_pile_up(conn, query.from_user.id, callback_data.mode)
    await query.answer(tr("pile_up.saved"))
    await _screen(query, pool, tr)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(open_screen, cb.PileUpMenu.filter())
    router.callback_query.register(choose, cb.PileUp.filter())
    return router
