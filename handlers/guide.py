"""The user guide, as text or as the operator's video."""

from __future__ import annotations

import html

from aiogram import Bot, Router
from aiogram.types import CallbackQuery, InlineKeyboardMarkup

from core.i18n import Translator
from core.settings import Settings
from handlers import callbacks as cb
from handlers.menu import button
from handlers.ui import show


def formats_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("guide.btn_text"), cb.AboutBotText()), button(tr("guide.btn_video"), cb.AboutBotVideo())],
        [button(tr("common.back"), cb.BackToMenu())],
    ])


def back_keyboard(tr: Translator) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[button(tr("common.back"), cb.FullManual())]])


async def full_manual(query: CallbackQuery, tr: Translator) -> None:
    await query.answer()
    await show(query, tr("guide.choose"), formats_keyboard(tr))


async def about_bot_text(query: CallbackQuery, settings: Settings, tr: Translator) -> None:
    await query.answer()
    await show(query, tr("guide.text", support=html.escape(settings.support_contact)), back_keyboard(tr))


async def about_bot_video(query: CallbackQuery, bot: Bot, settings: Settings, tr: Translator) -> None:
    await query.answer()
    if not settings.manual_video_file_id:
        await show(query, tr("guide.no_video"), back_keyboard(tr))
        return
    await bot.send_video(query.from_user.id, settings.manual_video_file_id, caption=tr("menu.guide_caption"),
                         reply_markup=back_keyboard(tr))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(full_manual, cb.FullManual.filter())
    router.callback_query.register(full_manual, cb.AboutBot.filter())
    router.callback_query.register(about_bot_text, cb.AboutBotText.filter())
    router.callback_query.register(about_bot_video, cb.AboutBotVideo.filter())
    return router
