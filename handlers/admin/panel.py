"""The admin panel: user lists by filter, the user card, and the card's access buttons."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.paging import page_of
from core.phone import mask_phone
from core.settings import Settings
from db import accounts, configs, cycles, groups, users
from db.rows import BotUser
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button, day, send_access_granted
from handlers.payments.admin import card_section as payments_card_section
from handlers.ui import show
from services import access, rounds

PAGE_SIZE = 10
FILTERS = (
    (cb.UserFilter.all, "admin.btn_all"),
    (cb.UserFilter.requested, "admin.btn_requests"),
    (cb.UserFilter.confirmed, "admin.btn_active"),
    (cb.UserFilter.banned, "admin.btn_banned"),
)
# Card button → days added to max(now, current expiry).
EXPIRY_STEPS: dict[type[cb.CallbackData], int] = {
    cb.AdminAddWeek: 7,
    cb.AdminAddMonth: 30,
    cb.AdminAddVip: 3650,
    cb.AdminSubMonth: -30,
}


def _marker(row: BotUser, now: datetime) -> str:
    if row.status == "banned":
        return "⛔"
    return "🟢" if access.is_allowed(row, now) else "🟠"


def _status_key(row: BotUser, now: datetime) -> str:
    if row.status == "banned":
        return "admin.status_banned"
    if access.is_allowed(row, now):
        return "admin.status_active"
    return "admin.status_expired" if row.status == "active" else "admin.status_pending"


async def panel_screen(conn: AsyncConnection, tr: Translator, view: cb.UserFilter,
                       requested_page: int) -> tuple[str, InlineKeyboardMarkup]:
    counts = await users.counts(conn)
    page = page_of(requested_page, await users.count_filtered(conn, view), PAGE_SIZE)
    rows = await users.page_filtered(conn, view, offset=page.offset, limit=PAGE_SIZE)
    now = datetime.now(UTC)
    lines = [
        tr("admin.panel_header", total=counts.total, pending=counts.pending, active=counts.active,
           banned=counts.banned),
        tr("admin.panel_page", filter=tr(f"admin.filter_{view.value}"), page=page.number + 1, pages=page.count),
    ]
    if not rows:
        lines.append(tr("admin.panel_empty"))
    kb = InlineKeyboardBuilder()
    for i in range(0, len(rows), 2):
        kb.row(*(button(f"{_marker(r, now)} {r.display_name}"[:60], cb.AdminUser(id=r.user_id))
                 for r in rows[i:i + 2]))
    nav = []
    if page.has_prev:
        nav.append(button("◀️", cb.AdminPanel(view=view, page=page.number - 1)))
    if page.has_next:
        nav.append(button("▶️", cb.AdminPanel(view=view, page=page.number + 1)))
    if nav:
        kb.row(*nav)
    kb.row(*(button(("• " if f is view else "") + tr(key), cb.AdminPanel(view=f, page=0)) for f, key in FILTERS[:2]))
    kb.row(*(button(("• " if f is view else "") + tr(key), cb.AdminPanel(view=f, page=0)) for f, key in FILTERS[2:]))
    kb.row(button(tr("admin.btn_refresh"), cb.AdminPanel(view=view, page=page.number)))
    kb.row(button(tr("admin.btn_announce"), cb.AdminAnnounce()), button(tr("admin.btn_menu"), cb.BackToMenu()))
    return "\n".join(lines), kb.as_markup()


def _access_line(tr: Translator, row: BotUser) -> str:
    # A pending row carries an expiry in the past only so that it is not allowed; shown as a date it
    # read as access that had been granted until then.
    if row.status == "pending":
        return tr("admin.card_not_granted")
    return tr("admin.card_permanent") if row.expires_at is None else tr("admin.card_expiry", date=day(row.expires_at))


async def card_screen(conn: AsyncConnection, tr: Translator, user_id: int) -> tuple[str, InlineKeyboardMarkup] | None:
    row = await users.get(conn, user_id)
    if row is None:
        return None
    now = datetime.now(UTC)
    account = await accounts.get_active(conn, user_id)
    owned = await accounts.list_for_owner(conn, user_id)
    config = await configs.get(conn, user_id)
    last = await cycles.last_rounds(conn, user_id)
    lines = [
        tr("admin.card_title", name=html.escape(row.display_name)),
        tr("admin.card_username", username=f"@{html.escape(row.username)}" if row.username else "—"),
        tr("admin.card_id", id=row.user_id),
        tr("admin.card_status", status=tr(_status_key(row, now))),
        _access_line(tr, row),
        tr("admin.card_account", phone=html.escape(mask_phone(account.phone))) if account
        else tr("admin.card_no_account"),
        *([tr("admin.card_accounts", active=sum(a.status == "active" for a in owned), total=len(owned))]
          if len(owned) > 1 else []),
        tr("admin.card_broadcast_on") if config and config.active else tr("admin.card_broadcast_off"),
        tr("admin.card_groups", count=await groups.count_selected(conn, user_id)),
        *rounds.last_round_lines(tr, last, "admin.card_"),
    ]
    kb = InlineKeyboardBuilder()
    kb.row(button(tr("admin.btn_week"), cb.AdminAddWeek(id=user_id)),
           button(tr("admin.btn_month"), cb.AdminAddMonth(id=user_id)))
    kb.row(button(tr("admin.btn_sub_month"), cb.AdminSubMonth(id=user_id)),
           button(tr("admin.btn_vip"), cb.AdminAddVip(id=user_id)))
    if row.status == "banned":
        kb.row(button(tr("admin.btn_unban"), cb.AdminUnban(id=user_id)))
    else:
        kb.row(button(tr("admin.btn_ban"), cb.AdminBlock(id=user_id)))
    paid_lines, refund_rows = await payments_card_section(conn, tr, user_id)  # nothing for who never paid
    lines += paid_lines
    for refund_row in refund_rows:
        kb.row(*refund_row)
    kb.row(button(tr("admin.btn_back"), cb.AdminPanel(view=cb.UserFilter.all, page=0)))
    return "\n".join(lines), kb.as_markup()


async def redraw_card(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator, user_id: int) -> None:
    async with pool.connection() as conn:
        screen = await card_screen(conn, tr, user_id)
    if screen is not None:
        await show(query, *screen)


# ---- handlers ---------------------------------------------------------------------------------


async def open_panel(query: CallbackQuery, callback_data: cb.AdminPanel, pool: AsyncConnectionPool,
                     tr: Translator) -> None:
    async with pool.connection() as conn:
        text, markup = await panel_screen(conn, tr, callback_data.view, callback_data.page)
    await query.answer()
    await show(query, text, markup)


async def open_card(query: CallbackQuery, callback_data: cb.AdminUser, pool: AsyncConnectionPool,
                    tr: Translator) -> None:
    async with pool.connection() as conn:
        screen = await card_screen(conn, tr, callback_data.id)
    if screen is None:
        await query.answer(tr("admin.user_not_found"), show_alert=True)
        return
    await query.answer()
    await show(query, *screen)


async def change_expiry(
    query: CallbackQuery, callback_data: cb.AdminAddWeek | cb.AdminAddMonth | cb.AdminAddVip | cb.AdminSubMonth,
    bot: Bot, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
) -> None:
    days = EXPIRY_STEPS[type(callback_data)]
    try:
        async with pool.connection() as conn:
            # A card's button acts on a user it showed: an id without a row is forged or stale.
            change = await access.adjust(conn, callback_data.id, days, create=False)
    except access.UnknownUser:
        await query.answer(tr("admin.user_not_found"), show_alert=True)
        return
    if change.notify_granted:
        await send_access_granted(bot, settings, change.row)
    expiry = change.row.expires_at
    await query.answer(tr("admin.toast_permanent") if expiry is None else tr("admin.toast_expiry", date=day(expiry)))
    await redraw_card(query, pool, tr, callback_data.id)


async def block(query: CallbackQuery, callback_data: cb.AdminBlock, pool: AsyncConnectionPool, settings: Settings,
                tr: Translator) -> None:
    try:
        async with pool.connection() as conn:
            result = await access.ban(conn, callback_data.id, settings, create=False)
    except access.UnknownUser:
        await query.answer(tr("admin.user_not_found"), show_alert=True)
        return
    if result is access.BanResult.refused_admin:
        await query.answer(tr("admin.ban_refused"), show_alert=True)
        return
    await query.answer(tr("admin.toast_banned"))
    await redraw_card(query, pool, tr, callback_data.id)


async def lift_ban(query: CallbackQuery, callback_data: cb.AdminUnban, pool: AsyncConnectionPool,
                   tr: Translator) -> None:
    async with pool.connection() as conn:
        row = await access.unban(conn, callback_data.id)
        known = row is not None or await users.get(conn, callback_data.id) is not None
    if not known:
        await query.answer(tr("admin.user_not_found"), show_alert=True)
        return
    await query.answer(tr("admin.toast_unbanned") if row else tr("admin.toast_not_banned"))
    await redraw_card(query, pool, tr, callback_data.id)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.middleware(SuperAdminOnly())
    router.callback_query.register(open_panel, cb.AdminPanel.filter())
    router.callback_query.register(open_card, cb.AdminUser.filter())
    for factory in EXPIRY_STEPS:
        router.callback_query.register(change_expiry, factory.filter())
    router.callback_query.register(block, cb.AdminBlock.filter())
    router.callback_query.register(lift_ban, cb.AdminUnban.filter())
    return router
