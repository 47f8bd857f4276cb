"""What no feature router handled: outdated or unknown buttons."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from core.settings import Settings
from handlers.menu import send_main_menu


async def outdated_button(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings,
                          tr: Translator, is_admin: bool) -> None:
    await query.answer(tr("common.outdated_button"))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=is_admin)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(outdated_button)
    return router
