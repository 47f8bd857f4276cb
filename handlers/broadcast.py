"""Interval, start and stop of the user's broadcast."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.settings import Settings
from db import accounts, configs, groups
from db.rows import BotUser, Config
from handlers import callbacks as cb
from handlers.menu import button, require_login, send_main_menu
from handlers.states import BroadcastStates
from handlers.ui import show
from services import broadcast, rounds
from services.access import is_allowed

PRESETS = (3, 5, 10, 30)


def interval_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for pair in (PRESETS[:2], PRESETS[2:]):
        kb.row(*(button(tr("broadcast.btn_minutes", minutes=m), cb.SetInterval(minutes=m)) for m in pair))
    kb.row(button(tr("broadcast.btn_custom"), cb.SetIntervalCustom()))
    kb.row(button(tr("broadcast.btn_cancel"), cb.CancelBroadcast()))
    return kb.as_markup()


def cancel_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(tr("broadcast.btn_cancel"), cb.CancelBroadcast())]])


def _allowed(user_row: BotUser | None, is_admin: bool) -> bool:
    return is_admin or is_allowed(user_row, datetime.now(UTC))


async def _apply_interval(
    target: Message | CallbackQuery, user_id: int, minutes: int, *, pool: AsyncConnectionPool,
    settings: Settings, tr: Translator, is_admin: bool, user_row: BotUser | None,
) -> None:
    """Store the interval and start, or say what is still missing (the interval is kept either way)."""
    async with pool.connection() as conn:
        config = await configs.get(conn, user_id)
        if config is None or config.message_id is None:
            notice = tr("broadcast.need_message")
        else:
            await configs.set_interval(conn, user_id, minutes)
            notice = await _start(conn, user_id, minutes, user_row=user_row, is_admin=is_admin, tr=tr,
                                  settings=settings, was=config)
    await send_main_menu(target, pool=pool, settings=settings, tr=tr, user_id=user_id, is_admin=is_admin,
                         notice=notice)


async def _start(conn: AsyncConnection, user_id: int, minutes: int | None, *, user_row: BotUser | None,
                 is_admin: bool, tr: Translator, settings: Settings, was: Config | None) -> str:
    """Activate when everything is there; returns the notice to show. Order: the next step to take.
    `was` is the config as it stood before this press (a running broadcast keeps its clock)."""
    if await accounts.get_active(conn, user_id) is None:
        return tr("menu.need_login")
    if not _allowed(user_row, is_admin):
        return tr("broadcast.not_allowed")
    config = await configs.get(conn, user_id)
    if config is None or config.message_id is None:
        return tr("broadcast.need_message")
    if minutes is None:
        return tr("broadcast.need_interval")
    if await groups.count_selected(conn, user_id) == 0:
        return tr("broadcast.need_groups")
    now = datetime.now(UTC)
    await configs.activate(conn, user_id, minutes, first_run_at=now)
    if was is not None and was.active:
        if was.interval_minutes != minutes:
            return tr("broadcast.interval_changed", minutes=minutes)
        return tr("broadcast.started", minutes=minutes)
    started = await configs.get(conn, user_id)
    if started is not None and started.next_run_at is not None and started.next_run_at > now:
        # The previous round began less than an interval ago: say so, instead of "right away".
        at = rounds.next_round_at(started, jitter_max_ms=settings.jitter_max_ms) or started.next_run_at
        return tr("broadcast.started_wait", minutes=minutes, **rounds.when(tr, at, now))
    return tr("broadcast.started", minutes=minutes)


# ---- handlers --------------------------------------------------------------------------------------


async def set_interval(query: CallbackQuery, callback_data: cb.SetInterval, state: FSMContext,
                       pool: AsyncConnectionPool, settings: Settings, tr: Translator, is_admin: bool,
                       user_row: BotUser | None) -> None:
    if callback_data.minutes not in PRESETS:
        await query.answer(tr("broadcast.bad_preset"), show_alert=True)  # forged: only the buttons' values
        return
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    await state.clear()
    await query.answer()
    await _apply_interval(query, query.from_user.id, callback_data.minutes, pool=pool, settings=settings, tr=tr,
                          is_admin=is_admin, user_row=user_row)


async def set_interval_custom(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool,
                              settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    await state.set_state(BroadcastStates.WAITING_INTERVAL)
    await query.answer()
    text = tr("broadcast.ask_interval", min=settings.min_interval_minutes, max=settings.max_interval_minutes)
    await show(query, text, cancel_keyboard(tr))


async def custom_interval(message: Message, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                          tr: Translator, is_admin: bool, user_row: BotUser | None) -> None:
    assert message.from_user is not None
    raw = (message.text or "").strip()
    low, high = settings.min_interval_minutes, settings.max_interval_minutes
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        await message.answer(tr("broadcast.bad_interval", min=low, max=high), reply_markup=cancel_keyboard(tr))
        return
    await state.clear()
    await _apply_interval(message, message.from_user.id, int(raw), pool=pool, settings=settings, tr=tr,
                          is_admin=is_admin, user_row=user_row)


async def start_broadcast(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                          is_admin: bool, user_row: BotUser | None) -> None:
    async with pool.connection() as conn:
        config = await configs.get(conn, query.from_user.id)
        minutes = config.interval_minutes if config else None
        notice = await _start(conn, query.from_user.id, minutes, user_row=user_row, is_admin=is_admin, tr=tr,
                              settings=settings, was=config)
    await query.answer()
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                         is_admin=is_admin, notice=notice)


async def stop_broadcast(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                         is_admin: bool) -> None:
    async with pool.connection() as conn:
        await broadcast.stop(conn, query.from_user.id)
    await query.answer(tr("broadcast.stopped"))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                         is_admin=is_admin, notice=tr("broadcast.stopped"))


async def cancel_broadcast(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool,
                           settings: Settings, tr: Translator, is_admin: bool) -> None:
    await state.clear()
    await query.answer()
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                         is_admin=is_admin, notice=tr("common.cancelled"))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(set_interval, cb.SetInterval.filter())
    router.callback_query.register(set_interval_custom, cb.SetIntervalCustom.filter())
    router.message.register(custom_interval, BroadcastStates.WAITING_INTERVAL, F.text, ~F.text.startswith("/"))
    router.callback_query.register(start_broadcast, cb.StartBroadcast.filter())
    # A user whose access ran out can still stop what is running (the access check lets it through).
    router.callback_query.register(stop_broadcast, cb.StopBroadcast.filter(), flags={"allow_expired": True})
    router.callback_query.register(cancel_broadcast, cb.CancelBroadcast.filter())
    return router
