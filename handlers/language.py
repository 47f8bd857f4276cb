"""/lang: the user's language, stored and applied to the very reply that confirms it."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from psycopg_pool import AsyncConnectionPool

from core.i18n import LANGUAGES, Translator
from db import users
from handlers import callbacks as cb
from handlers.menu import button
from handlers.ui import show
from services.login import ensure_user_row

_NAMES = {"uz": "🇺🇿 O'zbekcha", "ru": "🇷🇺 Русский", "en": "🇬🇧 English"}


def language_keyboard() -> InlineKeyboardMarkup:
    # Each language is named in itself, so anyone can find theirs whatever the current language.
    return InlineKeyboardMarkup(inline_keyboard=[[button(_NAMES[code], cb.Language(code=code)) for code in LANGUAGES]])


async def lang_command(message: Message, tr: Translator) -> None:
    await message.answer(tr("language.choose"), reply_markup=language_keyboard())


async def choose(query: CallbackQuery, callback_data: cb.Language, pool: AsyncConnectionPool,
                 is_admin: bool) -> None:
    if callback_data.code not in LANGUAGES:
        await query.answer()  # forged: nothing to store
        return
    user = query.from_user
    async with pool.connection() as conn:
        # A super admin may have no row yet; the choice must still be remembered.
        await ensure_user_row(conn, user.id, is_admin=is_admin, first_name=user.first_name, username=user.username,
                              last_name=user.last_name, language_code=user.language_code)
        await users.set_language(conn, user.id, callback_data.code)
    tr = Translator(callback_data.code)  # the context's translator still speaks the old language
    await query.answer()
    await show(query, tr("language.saved"), language_keyboard())


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(lang_command, Command("lang"), flags={"public": True})
    router.callback_query.register(choose, cb.Language.filter(), flags={"public": True})
    return router
