"""Showing a screen: edit the pressed message in place, or send a new one when that is impossible."""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

log = logging.getLogger(__name__)

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | None


async def show(target: Message | CallbackQuery, text: str, markup: Markup = None) -> None:
    """A callback edits its message; a message (or an uneditable one) gets a new message."""
    if isinstance(target, CallbackQuery):
        message = target.message
        if isinstance(message, Message) and (markup is None or isinstance(markup, InlineKeyboardMarkup)):
            try:
                await message.edit_text(text, reply_markup=markup)
                return
            except TelegramBadRequest as exc:
                if "message is not modified" in exc.message:
                    return  # the screen already shows this: not an error
                log.debug("edit impossible (%s), sending a new message", exc.message)
        if target.from_user is not None and target.bot is not None:
            await target.bot.send_message(target.from_user.id, text, reply_markup=markup)
        return
    await target.answer(text, reply_markup=markup)
