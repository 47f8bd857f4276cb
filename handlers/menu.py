"""/start, /menu, /id, /info and the main menu every feature returns to."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.phone import mask_phone
from core.settings import Settings
from db import accounts, configs, cycles, groups
from db.rows import BotUser
from handlers import callbacks as cb
from handlers.payments.screens import menu_section as payments_menu_section
from handlers.payments.screens import offer
from handlers.ui import show
from services import rounds
from services.access import is_allowed


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    """One inline button; every keyboard of the user journey is built from these."""
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def guest_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("menu.btn_login"), cb.Login()), button(tr("menu.btn_guide"), cb.FullManual())],
    ])


def account_keyboard(tr: Translator, *, active: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if active:
        kb.row(button(tr("menu.btn_stop"), cb.StopBroadcast()))
    else:
        kb.row(button(tr("menu.btn_start"), cb.StartBroadcast()))
    kb.row(button(tr("menu.btn_groups"), cb.SelectGroups()), button(tr("menu.btn_message"), cb.SendMessage()))
    kb.row(button(tr("menu.btn_pile_up"), cb.PileUpMenu()))
    kb.row(button(tr("menu.btn_history"), cb.SentMessages()), button(tr("menu.btn_refresh"), cb.RestartBot()))
    kb.row(button(tr("menu.btn_guide"), cb.FullManual()), button(tr("menu.btn_accounts"), cb.Accounts()),
           button(tr("menu.btn_logout"), cb.Logout()))
    return kb.as_markup()


async def user_menu_screen(conn: AsyncConnection, tr: Translator, user_id: int,
                           settings: Settings) -> tuple[str, InlineKeyboardMarkup]:
    account = await accounts.get_active(conn, user_id)
    if account is None:
        stored = await accounts.get(conn, user_id)
        if stored is not None and stored.status == "revoked":
            return tr("menu.session_ended"), guest_keyboard(tr)  # why nothing is sent, and the way back
        return tr("menu.not_connected"), guest_keyboard(tr)
    config = await configs.get(conn, user_id)
    selected = await groups.count_selected(conn, user_id)
    last = await cycles.last_rounds(conn, user_id)
    active = bool(config and config.active)
    owned = await accounts.list_for_owner(conn, user_id)
    view = await rounds.outlook(conn, config, owned, jitter_max_ms=settings.jitter_max_ms)
    several = [tr("menu.status_accounts", active=sum(a.status == "active" for a in owned), total=len(owned))] \
        if len(owned) > 1 else []
    lines = [
        tr("menu.status_title"),
        tr("menu.status_account", phone=html.escape(mask_phone(account.phone))),
        *several,
        tr("menu.status_groups", count=selected),
        tr("menu.status_on") if active else tr("menu.status_off"),
        *rounds.status_lines(tr, view, selected_groups=selected),  # when the next round goes out
        tr("menu.status_interval", minutes=config.interval_minutes)
        if config and config.interval_minutes else tr("menu.status_interval_unset"),
        tr("menu.status_message_set") if config and config.message_id else tr("menu.status_message_missing"),
        *rounds.last_round_lines(tr, last, "menu.status_"),
    ]
    return "\n".join(lines), account_keyboard(tr, active=active)


async def _admin_screen(conn: AsyncConnection, tr: Translator) -> tuple[str, InlineKeyboardMarkup] | None:
    try:
        from handlers.admin.menu import admin_menu_screen

        return await admin_menu_screen(conn, tr)
    except (ImportError, NotImplementedError):
        return None  # the admin tools are not there yet: the user menu still works


async def send_main_menu(
    target: Message | CallbackQuery,
    *,
    pool: AsyncConnectionPool,
    settings: Settings,
    tr: Translator,
    user_id: int,
    is_admin: bool,
    notice: str | None = None,
) -> None:
    """The menu for the user's role; `notice` (already translated) goes above it."""
    async with pool.connection() as conn:
        screen = await user_menu_screen(conn, tr, user_id, settings)
        admin = await _admin_screen(conn, tr) if is_admin else None
        if admin is not None:
            # A super admin broadcasts too: the admin tools first, then their own broadcast with the
            # same buttons as everyone's, so every screen's "back to the menu" reaches both.
            text, markup = screen
            screen = ("\n".join([admin[0], "", tr("menu.own_broadcast"), text]),
                      InlineKeyboardMarkup(inline_keyboard=[*admin[1].inline_keyboard, *markup.inline_keyboard]))
        else:
            lines, rows = await payments_menu_section(conn, settings, tr, user_id)
            if lines or rows:  # when access ends and whether it renews (only where payments are on)
                text, markup = screen
                screen = ("\n".join([text, "", *lines]) if lines else text,
                          InlineKeyboardMarkup(inline_keyboard=[*markup.inline_keyboard, *rows]))
    text, markup = screen
    await show(target, f"{notice}\n\n{text}" if notice else text, markup)


async def require_login(
    query: CallbackQuery, *, pool: AsyncConnectionPool, settings: Settings, tr: Translator, is_admin: bool
) -> bool:
    """Guard of every account-bound button: without an active account the user is sent back to the
    menu (which offers Log in) with a toast, and the caller does nothing."""
    async with pool.connection() as conn:
        if await accounts.get_active(conn, query.from_user.id) is not None:
            return True
    await query.answer(tr("menu.need_login"), show_alert=True)
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=is_admin)
    return False


# ---- handlers --------------------------------------------------------------------------------------


async def start(
    message: Message, state: FSMContext, bot: Bot, pool: AsyncConnectionPool, settings: Settings,
    tr: Translator, is_admin: bool, user_row: BotUser | None,
) -> None:
    await state.clear()
    if settings.manual_video_file_id:
        await bot.send_video(message.chat.id, settings.manual_video_file_id, caption=tr("menu.guide_caption"))
    await message.answer(tr("menu.greeting", support=html.escape(settings.support_contact)))
    # /start is public (the guide and greeting are for everyone); the menu is not.
    if not is_admin and not is_allowed(user_row, datetime.now(UTC)):
        no_access = tr("menu.no_access", support=html.escape(settings.support_contact))
        banned = user_row is not None and user_row.status == "banned"
        sale = None if banned else offer(settings, tr)  # the plans, where PLANS sells access
        if sale is None:
            await message.answer(no_access)
        else:
            await message.answer(f"{no_access}\n\n{sale[0]}", reply_markup=sale[1])
        return
    assert message.from_user is not None
    await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=message.from_user.id,
                         is_admin=is_admin)


async def menu_command(
    message: Message, state: FSMContext, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
    is_admin: bool,
) -> None:
    await state.clear()
    assert message.from_user is not None
    await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=message.from_user.id,
                         is_admin=is_admin)


async def my_id(message: Message, tr: Translator) -> None:
    assert message.from_user is not None
    await message.answer(tr("menu.your_id", id=message.from_user.id))


async def info(message: Message, pool: AsyncConnectionPool, tr: Translator, is_admin: bool,
               user_row: BotUser | None) -> None:
    if is_admin:
        async with pool.connection() as conn:
            try:
                from handlers.admin.info import admin_info_text

                text = await admin_info_text(conn, tr)
            except (ImportError, NotImplementedError):
                text = tr("menu.info_admin")
        await message.answer(text)
        return
    if user_row is not None and user_row.expires_at is not None:
        await message.answer(tr("menu.info_until", date=user_row.expires_at.astimezone(UTC).strftime("%Y-%m-%d")))
    else:
        await message.answer(tr("menu.info_permanent"))


async def back_to_menu(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                       tr: Translator, is_admin: bool) -> None:
    await state.clear()
    await query.answer()
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=is_admin)


async def restart_bot(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                      tr: Translator, is_admin: bool) -> None:
    await state.clear()
    await query.answer(tr("menu.refreshed"))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=is_admin)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, CommandStart(), flags={"public": True})
    router.message.register(menu_command, Command("menu"))
    router.message.register(my_id, Command("id"), flags={"public": True})
    router.message.register(info, Command("info"))
    router.callback_query.register(back_to_menu, cb.BackToMenu.filter())
    router.callback_query.register(restart_bot, cb.RestartBot.filter())
    return router
