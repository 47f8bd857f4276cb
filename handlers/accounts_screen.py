"""The accounts screen (docs/bot.md, "Accounts"): every Telegram account of the user with its state, Add,
and Log out per account. Drawn by the accounts router and by the menu's Log out when there are several."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.phone import mask_phone
from core.settings import Settings
from db import accounts
from db import groups as db_groups
from db.rows import Account
from handlers import callbacks as cb
from handlers.menu import button
from handlers.ui import show
from services import rounds


def account_label(tr: Translator, account: Account, position: int) -> str:
    """How an account is named on screens: its name at Telegram, else "Account n"."""
    return html.escape(account.name) if account.name else tr("accounts.unnamed", position=position)


def account_line(tr: Translator, account: Account, position: int, groups: int, now: datetime) -> str:
    values = {"position": position, "name": account_label(tr, account, position),
              "phone": html.escape(mask_phone(account.phone)), "groups": groups}
    if account.status != "active":
        return tr("accounts.line_revoked", **values)
    if account.flood_until is not None and account.flood_until > now:
        return tr("accounts.line_paused", until=rounds.clock(account.flood_until, now), **values)
    return tr("accounts.line_active", **values)


async def accounts_screen(conn: AsyncConnection, tr: Translator, settings: Settings,
                          user_id: int) -> tuple[str, InlineKeyboardMarkup]:
    owned = await accounts.list_for_owner(conn, user_id)
    by_account = await db_groups.selected_by_account(conn, user_id)
    now = datetime.now(UTC)
    limit = settings.max_accounts_per_user
    lines = [tr("accounts.title", count=len(owned), max=limit), tr("accounts.hint"), ""]
    if not owned:
        lines.append(tr("accounts.empty"))
    lines += [account_line(tr, a, n, by_account.get(a.id, 0), now) for n, a in enumerate(owned, 1)]
    if by_account.get(None):
        lines += ["", tr("accounts.no_account_groups", count=by_account[None])]
    kb = InlineKeyboardBuilder()
    for account in owned:
        phone = html.escape(mask_phone(account.phone))
        row = [button(tr("accounts.btn_logout", phone=phone), cb.AccountLogout(id=account.id))]
        if account.status != "active":
            row.insert(0, button(tr("accounts.btn_login_again", phone=phone), cb.AccountAdd()))
        kb.row(*row)
    if len(owned) < limit:
        kb.row(button(tr("accounts.btn_add"), cb.AccountAdd()))
    kb.row(button(tr("common.back"), cb.BackToMenu()))
    return "\n".join(lines), kb.as_markup()


async def show_accounts(target: CallbackQuery | Message, pool: AsyncConnectionPool, settings: Settings,
                        tr: Translator, *, notice: str | None = None) -> None:
    assert target.from_user is not None
    async with pool.connection() as conn:
        text, markup = await accounts_screen(conn, tr, settings, target.from_user.id)
    await show(target, f"{notice}\n\n{text}" if notice else text, markup)
