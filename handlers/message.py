"""Writing the broadcast message: text with its formatting, or a photo or video with a caption."""

from __future__ import annotations

import html
import logging
from datetime import datetime
from typing import Any

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, MessageEntity
from aiogram.utils.text_decorations import HtmlDecoration
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.content import CAPTION_LIMIT, MEDIA_LIMIT_BYTES, TEXT_LIMIT, utf16_len
from core.i18n import Translator
from core.settings import Settings
from db import accounts, configs, messages
from handlers import callbacks as cb
from handlers.broadcast import cancel_keyboard, interval_keyboard
from handlers.menu import button, require_login, send_main_menu
from handlers.states import BroadcastStates
from handlers.ui import show
from services import rounds
from services.messages import Captured, save_current

log = logging.getLogger(__name__)

PREVIEW_CHARS = 80
# The FSM data entry holding a message offered as the broadcast message (see `offer`).
OFFER_KEY = "offered_message"


def entity_dicts(entities: list[MessageEntity] | None) -> list[dict[str, Any]]:
    """Bot API entity objects as Telegram sent them: offsets stay in UTF-16 units, untouched."""
    return [e.model_dump(mode="json", exclude_none=True) for e in entities or []]


class _TelegramHtml(HtmlDecoration):
    """aiogram's HTML decoration, made safe for any stored link and for what a bot may send."""

    def link(self, value: str, link: str) -> str:
        return f'<a href="{html.escape(link)}">{value}</a>'

    def pre_language(self, value: str, language: str) -> str:
        return f'<pre><code class="language-{html.escape(language)}">{value}</code></pre>'

    def custom_emoji(self, value: str, custom_emoji_id: str) -> str:
        return value  # a bot may not send custom emoji: its stand-in emoji (the text) is shown

    def date_time(self, value: str, unix_time: int | datetime, date_time_format: str | None = None) -> str:
        return value


_HTML = _TelegramHtml()


def as_html(text: str, entities: list[dict[str, Any]], limit: int | None = None) -> str:
    """The message as Telegram HTML with its formatting, as the groups will see it; cut to `limit`
    UTF-16 units (one line, an ellipsis at the end) for a preview. Telegram's entities are well
    nested (one of two overlapping entities contains the other), and a cut keeps them so."""
    cut = limit is not None and utf16_len(text) > limit
    if cut:
        assert limit is not None
        units = text.encode("utf-16-le")[: (limit - 1) * 2]
        if len(units) >= 2 and 0xD800 <= int.from_bytes(units[-2:], "little") <= 0xDBFF:
            units = units[:-2]  # never half a surrogate pair
        # A newline becomes a space (one unit each way, so offsets still hold).
        text = units.decode("utf-16-le").replace("\n", " ")
    size = utf16_len(text)
    kept = []
    for raw in entities:
        try:
            entity = MessageEntity.model_validate(raw)
        except ValueError:
            continue  # a malformed entity loses its formatting; the text is still shown
        if entity.offset < size and entity.length > 0:
            kept.append(entity.model_copy(update={"length": min(entity.length, size - entity.offset)}))
    kept.sort(key=lambda e: (e.offset, -e.length))  # the outer of two entities starting together first
    body = _HTML.unparse(text, kept)
    return body + "…" if cut else body


class ContentRefused(Exception):
    def __init__(self, key: str, count: int | None = None, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.count = count  # the count a plural message's form is chosen by
        self.values = values

    def text(self, tr: Translator) -> str:
        return tr(self.key, **self.values) if self.count is None else tr.n(self.key, self.count, **self.values)


async def capture(message: Message, bot: Bot) -> Captured:
    """What the user sent, checked against Telegram's limits, media bytes included."""
    if message.text is not None:
        if utf16_len(message.text) > TEXT_LIMIT:
            raise ContentRefused("message.too_long", TEXT_LIMIT, limit=TEXT_LIMIT)
        return Captured("text", message.text, entity_dicts(message.entities))
    caption = message.caption or ""
    if message.photo:
        photo = message.photo[-1]  # the largest size Telegram made
        file_id, size, name, mime = photo.file_id, photo.file_size, "photo.jpg", "image/jpeg"
        kind: Any = "photo"
    elif message.video is not None:
        video = message.video
        file_id, size = video.file_id, video.file_size
        name, mime, kind = video.file_name or "video.mp4", video.mime_type or "video/mp4", "video"
    else:
        raise ContentRefused("message.unsupported")
    if utf16_len(caption) > CAPTION_LIMIT:
        raise ContentRefused("message.caption_too_long", CAPTION_LIMIT, limit=CAPTION_LIMIT)
    mb = MEDIA_LIMIT_BYTES // (1024 * 1024)
    if size is not None and size > MEDIA_LIMIT_BYTES:
        raise ContentRefused("message.media_too_big", mb=mb)  # refused before spending a download on it
    try:
        downloaded = await bot.download(file_id)
    except TelegramAPIError as exc:
        log.info("media download failed: %s", type(exc).__name__)
        raise ContentRefused("message.download_failed") from exc
    data = downloaded.read() if downloaded is not None else b""
    if len(data) > MEDIA_LIMIT_BYTES:
        raise ContentRefused("message.media_too_big", mb=mb)
    return Captured(kind, caption, entity_dicts(message.caption_entities), file_id, name, mime, data)


async def send_message(query: CallbackQuery, state: FSMContext, pool: AsyncConnectionPool, settings: Settings,
                       tr: Translator, is_admin: bool) -> None:
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    async with pool.connection() as conn:
        config = await configs.get(conn, query.from_user.id)
        current = await messages.get_owned(conn, query.from_user.id, config.message_id) \
            if config and config.message_id else None
    await state.set_state(BroadcastStates.WAITING_BROADCAST_MSG)
    await query.answer()
    parts = []
    if current is not None:
        shown = as_html(current.text, current.entities, PREVIEW_CHARS)  # formatted as it will be posted
        if current.kind != "text":
            shown = f"{tr(f'message.kind_{current.kind}')} {shown}".rstrip()
        parts.append(tr("message.current", preview=shown))
    parts.append(tr("message.ask"))
    await show(query, "\n\n".join(parts), cancel_keyboard(tr))


async def saved_text(conn: AsyncConnection, tr: Translator, settings: Settings, user_id: int, message_id: int,
                     key: str = "message.saved") -> str:
    """`key` (`<key>_running` while the broadcast runs, with from which round the message just made
    current goes out)."""
    config = await configs.get(conn, user_id)
    owned = await accounts.list_for_owner(conn, user_id)
    view = await rounds.outlook(conn, config, owned, jitter_max_ms=settings.jitter_max_ms)
    line = rounds.applies_line(tr, view, message_id)
    return f"{tr(key + '_running')}\n{line}" if line else tr(key)


async def receive(message: Message, state: FSMContext, bot: Bot, pool: AsyncConnectionPool, settings: Settings,
                  tr: Translator) -> None:
    assert message.from_user is not None
    try:
        captured = await capture(message, bot)
    except ContentRefused as refused:
        await message.answer(refused.text(tr), reply_markup=cancel_keyboard(tr))
        return  # the state is kept: the next message is another try
    async with pool.connection() as conn:
        message_id = await save_current(conn, message.from_user.id, captured)
        text = await saved_text(conn, tr, settings, message.from_user.id, message_id)
    await state.clear()
    await message.answer(text, reply_markup=interval_keyboard(tr))


async def offer(message: Message, state: FSMContext, tr: Translator) -> None:
    """A text, photo or video sent outside any conversation by a logged-in user: offered as the
    broadcast message with one button. The message waits in the FSM data (Redis, like any
    conversation), so the press works on any replica; a newer offer replaces it."""
    previous = (await state.get_data()).get(OFFER_KEY)
    if message.media_group_id and isinstance(previous, dict) and previous.get("album") == message.media_group_id:
        return  # an album arrives as several messages: one offer, for its first one
    await state.update_data({OFFER_KEY: {
        "id": message.message_id, "album": message.media_group_id,
        "message": message.model_dump(mode="json", exclude_none=True, by_alias=True),
    }})
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("message.btn_use_this"), cb.UseAsMessage(message_id=message.message_id))],
        [button(tr("common.menu"), cb.BackToMenu())],
    ])
    await message.reply(tr("message.offer"), reply_markup=markup)


async def use_as_message(query: CallbackQuery, callback_data: cb.UseAsMessage, state: FSMContext, bot: Bot,
                         pool: AsyncConnectionPool, settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin):
        return
    data = await state.get_data()
    offered = data.get(OFFER_KEY)
    if await state.get_state() is not None or not isinstance(offered, dict) \
            or offered.get("id") != callback_data.message_id:
        # Replaced by a newer offer, or cleared by /start, /menu, /cancel: like any outdated button.
        await query.answer(tr("common.outdated_button"))
        await send_main_menu(query, pool=pool, settings=settings, tr=tr, user_id=query.from_user.id,
                             is_admin=is_admin)
        return
    try:
        captured = await capture(Message.model_validate(offered["message"]), bot)
    except ContentRefused as refused:
        await query.answer(refused.text(tr), show_alert=True)
        return
    async with pool.connection() as conn:
        message_id = await save_current(conn, query.from_user.id, captured)
        text = await saved_text(conn, tr, settings, query.from_user.id, message_id)
    data.pop(OFFER_KEY, None)
    await state.set_data(data)
    await query.answer()
    await show(query, text, interval_keyboard(tr))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(send_message, cb.SendMessage.filter())
    router.message.register(receive, BroadcastStates.WAITING_BROADCAST_MSG)
    router.callback_query.register(use_as_message, cb.UseAsMessage.filter())
    return router
