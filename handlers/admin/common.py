"""Shared by the admin routers: the super-admin guard and the messages sent to other users."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, TelegramObject

from core.i18n import LanguageRow, Translator, person_language
from core.settings import Settings
from db.rows import BotUser
from handlers import callbacks as cb

log = logging.getLogger(__name__)


class SuperAdminOnly(BaseMiddleware):
    """Inner middleware of every admin router: callback data and commands are user input, so each
    admin action re-checks the presser. Others get a "not allowed" toast for a button and nothing at
    all for a command (admin commands are not advertised)."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if data.get("is_admin"):
            return await handler(event, data)
        if isinstance(event, CallbackQuery):
            tr: Translator = data["tr"]
            await event.answer(tr("common.not_allowed"), show_alert=True)
        return None


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def day(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d") if moment else "—"


def translator_for(row: LanguageRow | None, settings: Settings) -> Translator:
    """The language of someone other than the presser (the user an admin acts on, an admin told)."""
    return Translator(person_language(row, settings.default_language))


async def send_access_granted(bot: Bot, settings: Settings, row: BotUser) -> None:
    tr = translator_for(row, settings)
    text = tr("access.granted_permanent") if row.expires_at is None else tr("access.granted", date=day(row.expires_at))
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("access.btn_login"), cb.Login()), button(tr("access.btn_menu"), cb.BackToMenu())],
    ])
    try:
        await bot.send_message(row.user_id, text, reply_markup=markup)
    except TelegramAPIError as exc:  # the user never started the bot or blocked it: the grant stands
        log.info("access-granted message to %s not delivered: %s", row.user_id, type(exc).__name__)
