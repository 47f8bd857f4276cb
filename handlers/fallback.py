"""What no feature router handled: outdated or unknown buttons."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from core.i18n import Translator


async def outdated_button(query: CallbackQuery, tr: Translator) -> None:
    await query.answer(tr("common.outdated_button"))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(outdated_button)
    return router
