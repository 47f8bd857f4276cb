"""Several Telegram accounts per user: the accounts screen's buttons (docs/bot.md, "Accounts").

Every id a button carries is checked against the presser's own accounts: an account of another user is
never shown, logged out or named, whatever the callback data says."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.i18n import Translator
from core.phone import mask_phone
from core.settings import Settings
from db import accounts
from db import groups as db_groups
from handlers import callbacks as cb
from handlers.accounts_screen import show_accounts
from handlers.login import begin_login
from handlers.menu import button, send_main_menu
from handlers.ui import show
from services.login import log_out
from userbot.gateway import AccountGateway


async def accounts_menu(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                        tr: Translator) -> None:
    await state.clear()
    await query.answer()
    await show_accounts(query, pool, settings, tr)


async def account_add(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                      tr: Translator) -> None:
    """Within the limit, or to log in again an account whose session ended (it keeps its row, so it
    does not count twice: services/login.py matches it by its Telegram id)."""
    async with pool.connection() as conn:
        owned = await accounts.list_for_owner(conn, query.from_user.id)
    if len(owned) >= settings.max_accounts_per_user and all(a.status == "active" for a in owned):
        await query.answer(tr("accounts.limit", max=settings.max_accounts_per_user), show_alert=True)
        return
    await begin_login(query, state, tr)


async def account_logout(query: CallbackQuery, callback_data: cb.AccountLogout, pool: AsyncConnectionPool,
                         settings: Settings, tr: Translator) -> None:
    async with pool.connection() as conn:
        account = await accounts.get_owned(conn, query.from_user.id, callback_data.id)
        others = [a for a in await accounts.list_for_owner(conn, query.from_user.id)
                  if a.status == "active" and a.id != callback_data.id]
        groups = (await db_groups.selected_by_account(conn, query.from_user.id)).get(callback_data.id, 0)
    if account is None:
        await query.answer(tr("accounts.not_found"), show_alert=True)
        await show_accounts(query, pool, settings, tr)
        return
    await query.answer()
    phone = html.escape(mask_phone(account.phone))
    last = account.status == "active" and not others
    text = tr("accounts.logout_confirm_last", phone=phone) if last else tr(
        "accounts.logout_confirm", phone=phone, count=groups)
    await show(query, text, InlineKeyboardMarkup(inline_keyboard=[[
        button(tr("accounts.btn_logout_yes"), cb.AccountLogoutConfirm(id=account.id)),
        button(tr("common.back"), cb.Accounts()),
    ]]))


async def account_logout_confirm(query: CallbackQuery, callback_data: cb.AccountLogoutConfirm, state: FSMContext,
                                 pool: AsyncConnectionPool, redis: Redis, box: SecretBox, settings: Settings,
                                 gateway: AccountGateway, tr: Translator, is_admin: bool) -> None:
    await state.clear()
    async with pool.connection() as conn:
        account = await accounts.get_owned(conn, query.from_user.id, callback_data.id)
        done = account is not None and await log_out(conn, redis, settings, gateway, box, query.from_user.id,
                                                     callback_data.id)
        left = await accounts.count(conn, query.from_user.id)
    if not done or account is None:
        await query.answer(tr("accounts.not_found"), show_alert=True)
        await show_accounts(query, pool, settings, tr)
        return
    said = tr("accounts.logged_out", phone=html.escape(mask_phone(account.phone)))
    await query.answer(said)
    if left == 0:
        await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                             is_admin=is_admin, notice=tr("login.logged_out"))
        return
    await show_accounts(query, pool, settings, tr, notice=said)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(accounts_menu, cb.Accounts.filter())
    router.callback_query.register(account_add, cb.AccountAdd.filter())
    router.callback_query.register(account_logout, cb.AccountLogout.filter())
    router.callback_query.register(account_logout_confirm, cb.AccountLogoutConfirm.filter())
    return router
