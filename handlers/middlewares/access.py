"""The access check (docs/bot.md, "Access check"), in two halves.

The outer half (`AccessMiddleware`, before any filter) knows who writes: it creates the pending row
of an unknown user (idempotent; only the creating update notifies the admins), refreshes profile
fields at most hourly, and records a verdict. The handler is not known yet at that point, and some
handlers are open to everyone (`/start`'s greeting, `/id`, `/lang`): the inner half (`AccessGate`,
after the filters chose a handler) reads the handler's flags and lets it run or refuses.
When no handler matched at all, the outer half still answers a refused user.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.flags import get_flag
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject, User
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator, person_language
from core.settings import Settings
from db import users
from db.rows import BotUser
from handlers import callbacks as cb
from handlers.admin.common import button
from handlers.payments.screens import offer
from services.access import is_allowed, super_admin_ids

log = logging.getLogger(__name__)

PROFILE_REFRESH = timedelta(hours=1)
# A banned user is told nothing beyond "access denied", except their own id (support asks for it)
# and, where payments are on, how to reach payment support and the terms they paid under.
BANNED_MAY_USE = frozenset({"id", "paysupport", "terms"})

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class Standing(StrEnum):
    allowed = "allowed"
    new = "new"  # unknown until this update: a pending row was just created
    pending = "pending"  # never granted
    expired = "expired"
    banned = "banned"


@dataclass(slots=True)
class Verdict:
    standing: Standing
    answered: bool = False  # the gate answered or let a handler run


def standing_of(row: BotUser, now: datetime) -> Standing:
    if row.status == "banned":
        return Standing.banned
    if is_allowed(row, now):
        return Standing.allowed
    return Standing.expired if row.status == "active" else Standing.pending


def _profile(user: User) -> dict[str, Any]:
    return {"username": user.username, "first_name": user.first_name or "", "last_name": user.last_name,
            "language_code": user.language_code}


class AccessMiddleware(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            # No sender (a channel post, an anonymous admin): nobody to answer and no conversation
            # to keep, so the bot's handlers, which all serve a person, never see it.
            return None
        if data.get("is_admin"):
            return await handler(event, data)
        settings: Settings = data["settings"]
        pool: AsyncConnectionPool = data["pool"]
        row: BotUser | None = data.get("user_row")
        now = datetime.now(UTC)
        created = None
        async with pool.connection() as conn:
            if row is None:
                created = await users.create_pending(conn, user.id, **_profile(user))
                row = created or await users.get(conn, user.id)
            elif row.status != "banned" and now - row.profile_refreshed_at >= PROFILE_REFRESH:
                await users.refresh_profile(conn, user.id, **_profile(user))
                row = await users.get(conn, user.id)
        assert row is not None
        data["user_row"] = row
        if created is not None:
            await _notify_admins(data["bot"], settings, pool, created)
        verdict = Verdict(Standing.new if created is not None else standing_of(row, now))
        data["access"] = verdict
        result = await handler(event, data)
        if result is UNHANDLED and verdict.standing is not Standing.allowed and not verdict.answered:
            await refuse(event, verdict.standing, data["tr"], settings)
            return None
        return result


class AccessGate(BaseMiddleware):
    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        verdict: Verdict | None = data.get("access")
        if verdict is None or verdict.standing is Standing.allowed:
            return await handler(event, data)
        verdict.answered = True
        if _may_run(verdict.standing, data):
            return await handler(event, data)
        await refuse(event, verdict.standing, data["tr"], data["settings"])
        return None


def _may_run(standing: Standing, data: dict[str, Any]) -> bool:
    if get_flag(data, "payment"):
        return True  # Telegram took the money: the payment is recorded whoever paid (handlers.payments)
    public = bool(get_flag(data, "public"))
    if standing is Standing.banned:
        command: CommandObject | None = data.get("command")
        return public and command is not None and command.command in BANNED_MAY_USE
    return public or (standing in (Standing.pending, Standing.expired) and bool(get_flag(data, "allow_expired")))


async def refuse(event: TelegramObject, standing: Standing, tr: Translator, settings: Settings) -> None:
    support = html.escape(settings.support_contact)
    if standing is Standing.banned:
        text = tr("access.denied")
    elif standing is Standing.new and not isinstance(event, CallbackQuery):
        user = getattr(event, "from_user", None)
        text = tr("access.welcome", support=support, id=user.id if user else "")
    elif standing is Standing.expired:
        text = tr("access.expired", support=support)
    else:
        text = tr("access.not_active", support=support)
    if isinstance(event, CallbackQuery):
        await event.answer(text, show_alert=True)  # an alert holds 200 characters: the short texts only
    elif isinstance(event, Message):
        # Where PLANS sells access, everyone waiting for it is offered the plans right here.
        sale = offer(settings, tr) if standing is not Standing.banned else None
        if sale is None:
            await event.answer(text)
        else:
            await event.answer(f"{text}\n\n{sale[0]}", reply_markup=sale[1])


async def _notify_admins(bot: Bot, settings: Settings, pool: AsyncConnectionPool, row: BotUser) -> None:
    """One message per super admin for each new request, with the two actions an admin needs."""
    async with pool.connection() as conn:
        admin_ids = await super_admin_ids(conn, settings)
    for admin_id in admin_ids:
        async with pool.connection() as conn:
            known = await users.language_of(conn, admin_id)  # a super admin may have no row
        tr = Translator(person_language(known, settings.default_language))
        text = tr(
            "access.new_request",
            name=html.escape(row.display_name),
            username=f"@{html.escape(row.username)}" if row.username else "—",
            id=row.user_id,
        )
        markup = InlineKeyboardMarkup(inline_keyboard=[[
            button(tr("access.btn_add_month"), cb.AdminAddMonth(id=row.user_id)),
            button(tr("access.btn_open_card"), cb.AdminUser(id=row.user_id)),
        ]])
        try:
            await bot.send_message(admin_id, text, reply_markup=markup)
        except TelegramAPIError as exc:  # an admin who never opened the bot cannot be told
            log.warning("access request of %s not delivered to admin %s: %s", row.user_id, admin_id,
                        type(exc).__name__)
