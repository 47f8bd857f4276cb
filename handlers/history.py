"""The message history: list, view, use again, delete. Every id is checked against the presser."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg_pool import AsyncConnectionPool

from core.content import TEXT_LIMIT, preview, utf16_len
from core.i18n import Translator
from core.paging import page_of
from core.settings import Settings
from db import configs, cycles, messages
from db.messages import HistoryEntry
from handlers import callbacks as cb
from handlers.broadcast import interval_keyboard
from handlers.menu import button, require_login
from handlers.message import as_html, saved_text
from handlers.ui import show
from services import rounds
from services.messages import make_current

PER_PAGE = 5
LABEL_CHARS = 20


def _label(tr: Translator, entry: HistoryEntry) -> str:
    body = preview(entry.text, LABEL_CHARS) if entry.text else tr(f"message.kind_{entry.kind}")
    return f"{entry.created_at.astimezone(UTC):%m-%d %H:%M} – {body}"


async def show_history(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator, requested: int) -> None:
    async with pool.connection() as conn:
        total = await messages.count(conn, query.from_user.id)
        page = page_of(requested, total, PER_PAGE)
        entries = await messages.history_page(conn, query.from_user.id, offset=page.offset, limit=PER_PAGE)
    kb = InlineKeyboardBuilder()
    if not entries:
        kb.row(button(tr("common.menu"), cb.BackToMenu()))
        await show(query, tr("history.empty"), kb.as_markup())
        return
    lines = [tr.n("history.title", total, count=total), tr("history.page", page=page.number + 1, pages=page.count)]
    for n, entry in enumerate(entries, start=page.offset + 1):
        lines.append(tr("history.line", number=n, label=html.escape(_label(tr, entry)), cycles=entry.cycles,
                        sent=entry.sent))
        kb.row(button(_label(tr, entry), cb.HistoryView(id=entry.id)))
    nav = []
    if page.has_prev:
        nav.append(button("◀", cb.SentMessagesPage(page=page.number - 1)))
    if page.has_next:
        nav.append(button("▶", cb.SentMessagesPage(page=page.number + 1)))
    if nav:
        kb.row(*nav)
    kb.row(button(tr("common.menu"), cb.BackToMenu()))
    await show(query, "\n".join(lines), kb.as_markup())


def view_keyboard(tr: Translator, message_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("history.btn_use"), cb.HistoryUse(id=message_id)),
         button(tr("history.btn_delete"), cb.HistoryDelete(id=message_id))],
        [button(tr("common.back"), cb.SentMessages())],
    ])


async def _guard(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                 is_admin: bool) -> bool:
    return await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin)


async def sent_messages(query: CallbackQuery, callback_data: cb.SentMessages | cb.SentMessagesPage,
                        pool: AsyncConnectionPool, settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    await query.answer()
    await show_history(query, pool, tr, getattr(callback_data, "page", 0))


async def history_view(query: CallbackQuery, callback_data: cb.HistoryView, bot: Bot, pool: AsyncConnectionPool,
                       settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    async with pool.connection() as conn:
        found = await messages.get_owned(conn, query.from_user.id, callback_data.id)
        if found is None:
            await query.answer(tr("history.not_found"), show_alert=True)  # the same for others' ids: no leak
            return
        cycles_used, sent = await messages.usage(conn, found.id)
        last = await cycles.last_ran_with(conn, query.from_user.id, found.id)
        media = await messages.get_media(conn, found.media_id) if found.media_id else None
    await query.answer()
    header = tr("history.view", date=f"{found.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
                cycles=cycles_used, sent=sent)
    if last is not None and last.failures and last.finished_at is not None:
        # Which groups the message's last round missed, and why (the menu tells it for the last round).
        now = datetime.now(UTC)
        header = "\n".join([header, tr("history.last_failures", time=rounds.clock(last.finished_at, now)),
                             *rounds.failure_lines(tr, last, now)])
    if media is not None:
        # What the groups will get: the media from the stored bytes (the file id may have expired)
        # with the caption and its formatting; the details and buttons follow.
        upload = BufferedInputFile(media.data, filename=media.file_name)
        send = bot.send_photo if media.kind == "photo" else bot.send_video
        await send(query.from_user.id, upload, caption=as_html(found.text, found.entities) or None)
        await bot.send_message(query.from_user.id, header, reply_markup=view_keyboard(tr, found.id))
        return
    body = as_html(found.text, found.entities)
    if utf16_len(header) + 2 + utf16_len(found.text) <= TEXT_LIMIT:
        await show(query, f"{header}\n\n{body}", view_keyboard(tr, found.id))
        return
    # A text near Telegram's limit does not fit beside the details: it goes alone, as it will be posted.
    await bot.send_message(query.from_user.id, body)
    await bot.send_message(query.from_user.id, header, reply_markup=view_keyboard(tr, found.id))


async def history_use(query: CallbackQuery, callback_data: cb.HistoryUse, pool: AsyncConnectionPool,
                      settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    async with pool.connection() as conn:
        used = await make_current(conn, query.from_user.id, callback_data.id)
        text = await saved_text(conn, tr, settings, query.from_user.id, callback_data.id, "history.used") \
            if used else ""
    if not used:
        await query.answer(tr("history.not_found"), show_alert=True)
        return
    await query.answer()
    await show(query, text, interval_keyboard(tr))


async def history_delete(query: CallbackQuery, callback_data: cb.HistoryDelete, pool: AsyncConnectionPool,
                         settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    async with pool.connection() as conn:
        config = await configs.get(conn, query.from_user.id)
        if config is not None and config.message_id == callback_data.id:
            await query.answer(tr("history.is_current"), show_alert=True)
            return
        deleted = await messages.soft_delete(conn, query.from_user.id, callback_data.id)
    if not deleted:
        await query.answer(tr("history.not_found"), show_alert=True)
        return
    await query.answer(tr("history.deleted"))
    await show_history(query, pool, tr, 0)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(sent_messages, cb.SentMessages.filter())
    router.callback_query.register(sent_messages, cb.SentMessagesPage.filter())
    router.callback_query.register(history_view, cb.HistoryView.filter())
    router.callback_query.register(history_use, cb.HistoryUse.filter())
    router.callback_query.register(history_delete, cb.HistoryDelete.filter())
    return router
