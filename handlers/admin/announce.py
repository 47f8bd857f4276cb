"""Announcements: the admin writes, sees a preview, confirms; a background job does the sending."""

from __future__ import annotations

import asyncio

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.settings import Settings
from db import announcements, users
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button
from handlers.menu import send_main_menu
from handlers.states import AdminStates
from handlers.ui import show
from worker.queues import enqueue_announcement, sync_redis


def _cancel_markup(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(tr("admin.btn_cancel"), cb.AdminAnnounceCancel())]])


def _enqueue(settings: Settings, announcement_id: int) -> None:
    connection = sync_redis(settings)
    try:
        enqueue_announcement(settings, connection, announcement_id)
    finally:
        connection.close()


async def ask(query: CallbackQuery, state: FSMContext, tr: Translator) -> None:
    await state.set_state(AdminStates.WAITING_ADMIN_ANNOUNCE)
    await query.answer()
    await show(query, tr("admin.announce_prompt"), _cancel_markup(tr))


async def preview(message: Message, state: FSMContext, bot: Bot, pool: AsyncConnectionPool,
                  tr: Translator) -> None:
    if not (message.text or message.photo or message.video):
        await message.answer(tr("admin.announce_only_media"), reply_markup=_cancel_markup(tr))
        return
    # The preview is the very copy users will get (copyMessage keeps media and formatting).
    await bot.copy_message(message.chat.id, message.chat.id, message.message_id)
    async with pool.connection() as conn:
        count = (await users.counts(conn)).active
    await state.set_state(AdminStates.WAITING_ADMIN_ANNOUNCE_CONFIRM)
    await state.update_data(announce_message_id=message.message_id)
    await message.answer(tr.n("admin.announce_preview", count, count=count), reply_markup=InlineKeyboardMarkup(
        inline_keyboard=[[button(tr.n("admin.btn_announce_send", count, count=count), cb.AdminAnnounceConfirm()),
                          button(tr("admin.btn_cancel"), cb.AdminAnnounceCancel())]]))


async def confirm(query: CallbackQuery, state: FSMContext, bot: Bot, pool: AsyncConnectionPool,
                  settings: Settings, tr: Translator) -> None:
    data = await state.get_data()
    source = data.get("announce_message_id")
    if await state.get_state() != AdminStates.WAITING_ADMIN_ANNOUNCE_CONFIRM.state or not isinstance(source, int):
        await query.answer(tr("admin.announce_expired"), show_alert=True)
        return
    # Cleared first: a second press of the same button finds nothing to send.
    await state.clear()
    admin_id = query.from_user.id
    async with pool.connection() as conn:
        total = (await users.counts(conn)).active
        ann = await announcements.create(conn, admin_id=admin_id, from_chat_id=admin_id,
                                         source_message_id=source, total=total)
        progress = await bot.send_message(admin_id, tr("admin.announce_progress", done=0, total=total))
        await announcements.set_progress_message(conn, ann.id, progress.message_id)
    await asyncio.to_thread(_enqueue, settings, ann.id)  # RQ is sync: keep the event loop free
    await query.answer(tr.n("admin.announce_queued", total, count=total))


async def cancel(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                 tr: Translator) -> None:
    await state.clear()
    await query.answer(tr("admin.announce_cancelled"))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=True,
                         notice=tr("admin.announce_cancelled"))


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.middleware(SuperAdminOnly())
    router.callback_query.middleware(SuperAdminOnly())
    router.callback_query.register(ask, cb.AdminAnnounce.filter())
    router.callback_query.register(confirm, cb.AdminAnnounceConfirm.filter())
    router.callback_query.register(cancel, cb.AdminAnnounceCancel.filter())
    router.message.register(preview, AdminStates.WAITING_ADMIN_ANNOUNCE, ~F.text.startswith("/"))
    return router
