"""Logging a Telegram account in (phone → code → two-step password), logging out, and /cancel."""

from __future__ import annotations

import html
import logging
import math

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    User,
)
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.i18n import Translator, person_language
from core.phone import looks_like_code, mask_phone, normalize_code, normalize_phone
from core.settings import Settings
from db import accounts, users
from handlers import callbacks as cb
from handlers.accounts_screen import show_accounts
from handlers.menu import button, send_main_menu
from handlers.states import LoginStates
from handlers.ui import show
from services.login import LoginFlow, LoginStore, Outcome, ensure_user_row, log_out
from userbot.gateway import AccountGateway

log = logging.getLogger(__name__)

_NOT_COMMAND = ~F.text.startswith("/")


def _flow(redis: Redis, box: SecretBox, settings: Settings, gateway: AccountGateway) -> LoginFlow:
    return LoginFlow(LoginStore(redis, box, settings), gateway, box)


def phone_keyboard(tr: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=tr("login.btn_share_phone"), request_contact=True)]],
        resize_keyboard=True, one_time_keyboard=True,
    )


def logout_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("login.btn_logout_yes"), cb.LogoutConfirm()), button(tr("common.back"), cb.BackToMenu())],
    ])


async def _delete_secret(bot: Bot, message: Message) -> None:
    """The code or password must not stay in the chat history; failing to delete is not fatal."""
    try:
        await bot.delete_message(message.chat.id, message.message_id)
    except TelegramAPIError as exc:
        log.info("could not delete a secret-bearing message: %s", type(exc).__name__)


async def _ensure_row(pool: AsyncConnectionPool, user: User, is_admin: bool) -> None:
    async with pool.connection() as conn:
        await ensure_user_row(conn, user.id, is_admin=is_admin, first_name=user.first_name,
                              username=user.username, last_name=user.last_name, language_code=user.language_code)


# ---- start and phone ------------------------------------------------------------------------------


async def login(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                tr: Translator, is_admin: bool) -> None:
    """The menu's Log in: for a user with no active account (another one is added from the accounts
    screen, `account_add`)."""
    async with pool.connection() as conn:
        logged_in = await accounts.get_active(conn, query.from_user.id) is not None
    if logged_in:
        await query.answer(tr("login.already"))
        await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                             is_admin=is_admin)
        return
    await begin_login(query, state, tr)


async def begin_login(query: CallbackQuery, state: FSMContext, tr: Translator) -> None:
    """Ask for the phone number; the rest of the conversation is the same for every account."""
    await state.set_state(LoginStates.WAITING_PHONE)
    await query.answer()
    await show(query, tr("login.ask_phone"), phone_keyboard(tr))


async def phone(message: Message, state: FSMContext, redis: Redis, box: SecretBox, settings: Settings,
                gateway: AccountGateway, tr: Translator) -> None:
    assert message.from_user is not None
    if message.contact is not None:
        if message.contact.user_id != message.from_user.id:
            await message.answer(tr("login.not_own_contact"))
            return
        raw = message.contact.phone_number
    else:
        raw = message.text or ""
    number = normalize_phone(raw)
    if number is None:
        await message.answer(tr("login.bad_phone"))
        return
    outcome = await _flow(redis, box, settings, gateway).send_code(message.from_user.id, number)
    if outcome.kind == "code_sent":
        await state.set_state(LoginStates.WAITING_CODE)
        await message.answer(tr("login.code_sent"), reply_markup=ReplyKeyboardRemove())
        return
    await message.answer(_problem(tr, outcome))


def _problem(tr: Translator, outcome: Outcome) -> str:
    if outcome.kind == "invalid_phone":
        return tr("login.invalid_phone")
    if outcome.kind == "banned_phone":
        return tr("login.banned_phone")
    if outcome.kind == "flood":
        return tr("login.flood", minutes=max(1, math.ceil(outcome.seconds / 60)))
    return tr("login.error")


# ---- code and password ----------------------------------------------------------------------------


async def code(message: Message, state: FSMContext, bot: Bot, pool: AsyncConnectionPool, redis: Redis,
               box: SecretBox, settings: Settings, gateway: AccountGateway, tr: Translator,
               is_admin: bool) -> None:
    assert message.from_user is not None
    await _delete_secret(bot, message)
    digits = normalize_code(message.text)
    if digits is None:
        await message.answer(tr("login.not_a_code"))
        return
    await _ensure_row(pool, message.from_user, is_admin)
    async with pool.connection() as conn:
        outcome = await _flow(redis, box, settings, gateway).submit_code(conn, message.from_user.id, digits)
    await _after(message, outcome, state, bot, pool, settings, tr, is_admin)


async def password(message: Message, state: FSMContext, bot: Bot, pool: AsyncConnectionPool, redis: Redis,
                   box: SecretBox, settings: Settings, gateway: AccountGateway, tr: Translator,
                   is_admin: bool) -> None:
    assert message.from_user is not None
    # First of all: the password leaves the chat before anything can fail.
    await _delete_secret(bot, message)
    secret = message.text or ""
    await _ensure_row(pool, message.from_user, is_admin)
    async with pool.connection() as conn:
        outcome = await _flow(redis, box, settings, gateway).submit_password(conn, message.from_user.id, secret)
    await _after(message, outcome, state, bot, pool, settings, tr, is_admin, with_password=True)


async def _after(message: Message, outcome: Outcome, state: FSMContext, bot: Bot, pool: AsyncConnectionPool,
                 settings: Settings, tr: Translator, is_admin: bool, *, with_password: bool = False) -> None:
    assert message.from_user is not None
    user_id = message.from_user.id
    match outcome.kind:
        case "signed_in":
            await state.clear()
            await _tell_previous_owners(bot, pool, settings, outcome.moved_from)
            async with pool.connection() as conn:
                several = await accounts.count(conn, user_id) > 1
            notice = tr("login.success_2fa") if with_password else tr("login.success")
            if several:
                notice = tr("login.account_added")
            await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=user_id,
                                 is_admin=is_admin, notice=notice)
        case "password_needed":
            await state.set_state(LoginStates.WAITING_PASSWORD)
            await message.answer(tr("login.ask_password"))
        case "wrong_code":
            await message.answer(tr("login.wrong_code"))
        case "wrong_password":
            await message.answer(tr("login.wrong_password"))
        case "too_many_accounts":
            await state.clear()
            await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=user_id, is_admin=is_admin,
                                 notice=tr("login.too_many_accounts", max=settings.max_accounts_per_user))
        case "too_many_tries":
            await state.clear()
            await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=user_id,
                                 is_admin=is_admin, notice=tr("login.too_many_tries"))
        case "code_expired":
            await state.set_state(LoginStates.WAITING_PHONE)
            await message.answer(tr("login.code_expired"), reply_markup=phone_keyboard(tr))
        case "no_login":
            await state.set_state(LoginStates.WAITING_PHONE)
            await message.answer(tr("login.restart"), reply_markup=phone_keyboard(tr))
        case _:
            await message.answer(_problem(tr, outcome))


async def _tell_previous_owners(bot: Bot, pool: AsyncConnectionPool, settings: Settings,
                                owners: tuple[int, ...]) -> None:
    for owner in owners:
        async with pool.connection() as conn:
            row = await users.get(conn, owner)
        lang = person_language(row, settings.default_language)
        try:
            await bot.send_message(owner, Translator(lang)("login.moved_away"))
        except TelegramAPIError as exc:
            log.info("could not tell user %s their account moved: %s", owner, type(exc).__name__)


async def code_hint(message: Message, tr: Translator) -> None:
    await message.answer(tr("login.code_hint"))


# ---- cancel and logout ----------------------------------------------------------------------------


async def cancel(message: Message, state: FSMContext, pool: AsyncConnectionPool, redis: Redis, box: SecretBox,
                 settings: Settings, gateway: AccountGateway, tr: Translator, is_admin: bool) -> None:
    assert message.from_user is not None
    current = await state.get_state()
    if current in (s.state for s in LoginStates.__all_states__):
        await _flow(redis, box, settings, gateway).cancel(message.from_user.id)
    await state.clear()
    await message.answer(tr("common.cancelled"), reply_markup=ReplyKeyboardRemove())
    await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=message.from_user.id,
                         is_admin=is_admin)


async def logout(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                 is_admin: bool) -> None:
    """The menu's Log out: with one account, as it always was; with several, the accounts screen, where
    each has its own Log out."""
    async with pool.connection() as conn:
        owned = await accounts.list_for_owner(conn, query.from_user.id)
    if len(owned) > 1:
        await query.answer()
        await show_accounts(query, pool, settings, tr)
        return
    account = owned[0] if owned else None
    await query.answer()
    if account is None:
        await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                             is_admin=is_admin)
        return
    await show(query, tr("login.logout_confirm", phone=html.escape(mask_phone(account.phone))), logout_keyboard(tr))


async def logout_confirm(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, redis: Redis,
                         box: SecretBox, settings: Settings, gateway: AccountGateway, tr: Translator,
                         is_admin: bool) -> None:
    await state.clear()
    async with pool.connection() as conn:
        if await accounts.count(conn, query.from_user.id) > 1:
            done = None  # which one is not said: each is logged out from the accounts screen
        else:
            done = await log_out(conn, redis, settings, gateway, box, query.from_user.id)
    if done is None:
        await query.answer()
        await show_accounts(query, pool, settings, tr)
        return
    await query.answer(tr("login.logged_out") if done else None)
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                         is_admin=is_admin, notice=tr("login.logged_out") if done else None)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cancel, Command("cancel"))
    router.callback_query.register(login, cb.Login.filter())
    router.callback_query.register(logout, cb.Logout.filter())
    router.callback_query.register(logout_confirm, cb.LogoutConfirm.filter())
    router.message.register(phone, LoginStates.WAITING_PHONE, F.contact)
    router.message.register(phone, LoginStates.WAITING_PHONE, F.text, _NOT_COMMAND)
    router.message.register(code, LoginStates.WAITING_CODE, F.text, _NOT_COMMAND)
    # A password may start with "/"; the commands that matter (/start, /menu, /cancel) are taken earlier.
    router.message.register(password, LoginStates.WAITING_PASSWORD, F.text)
    router.message.register(code_hint, StateFilter(None), F.text.func(looks_like_code))
    return router
