"""The super admin's main menu (stats line and panel buttons), and /info's admin text."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from psycopg import AsyncConnection

from core.i18n import Translator
from db import ops, users
from handlers import callbacks as cb
from handlers.admin.common import button


async def admin_menu_screen(conn: AsyncConnection, tr: Translator) -> tuple[str, InlineKeyboardMarkup]:
    counts = await users.counts(conn)
    broadcasts = await ops.active_configs(conn)
    text = "\n".join([
        tr("admin.menu_title"),
        tr("admin.menu_stats", total=counts.total, pending=counts.pending, active=counts.active,
           broadcasts=broadcasts),
    ])
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("admin.btn_requests"), cb.AdminPanel(view=cb.UserFilter.requested, page=0)),
         button(tr("admin.btn_active"), cb.AdminPanel(view=cb.UserFilter.confirmed, page=0))],
        [button(tr("admin.btn_all"), cb.AdminPanel(view=cb.UserFilter.all, page=0))],
        [button(tr("admin.btn_announce"), cb.AdminAnnounce())],
        [button(tr("admin.btn_stats"), cb.AdminStats())],
    ])
    return text, markup
