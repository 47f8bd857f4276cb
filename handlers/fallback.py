"""What no feature router handled: outdated or unknown buttons, and messages no screen asked for.

Nothing goes unanswered: a user who pastes an ad without pressing Message, or types a command that
does not exist, must not think the bot is dead (docs/bot.md, "Messages nobody asked for").
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ContentType
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from psycopg_pool import AsyncConnectionPool

from core import bounds
from core.i18n import Translator
from core.settings import Settings
from db import accounts
from handlers.menu import send_main_menu
from handlers.message import offer

# What a person types or attaches; service messages (pins, payments, joins) need no answer.
_USER_CONTENT = frozenset({
    ContentType.TEXT, ContentType.PHOTO, ContentType.VIDEO, ContentType.ANIMATION, ContentType.AUDIO,
    ContentType.DOCUMENT, ContentType.STICKER, ContentType.VIDEO_NOTE, ContentType.VOICE, ContentType.CONTACT,
    ContentType.LOCATION, ContentType.VENUE, ContentType.POLL, ContentType.DICE, ContentType.STORY,
})


async def outdated_button(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings,
                          tr: Translator, is_admin: bool) -> None:
    await query.answer(tr("common.outdated_button"))
    await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id, is_admin=is_admin)


async def unhandled_message(message: Message, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                            tr: Translator, is_admin: bool) -> None:
    assert message.from_user is not None
    if message.content_type not in _USER_CONTENT:
        return
    if await state.get_state() is not None:
        # In a conversation, but not its kind of answer (a photo for the phone, a command for the code):
        # the conversation stays, the user is told how to go on or leave it.
        await message.answer(tr("common.unexpected"))
        return
    if message.text is not None and message.text.startswith("/"):
        notice = "common.unknown_command"
    else:
        broadcastable = message.text is not None or message.photo or message.video is not None
        if broadcastable and message.message_id in bounds.ROW_ID:  # a forged id 0 cannot be offered
            async with pool.connection() as conn:
                logged_in = await accounts.get_active(conn, message.from_user.id) is not None
            if logged_in:
                await offer(message, state, tr)
                return
        notice = "common.hint"
    await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=message.from_user.id,
                         is_admin=is_admin, notice=tr(notice))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(outdated_button)
    # Private chats only: in a group the bot was added to, other people's chatter is not for it.
    router.message.register(unhandled_message, F.chat.type == "private")
    return router
