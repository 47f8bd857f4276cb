"""/adduser, /ban, /unban: answered only to super admins (others get no reply at all)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from psycopg_pool import AsyncConnectionPool

from core import bounds
from core.i18n import Translator
from core.settings import Settings
from handlers.admin.common import SuperAdminOnly, day, send_access_granted
from services import access

DEFAULT_DAYS = 30


def parse_adduser(args: str | None) -> tuple[int, int] | None:
    """`<id> [days]`: both whole numbers, the id a user id, days within 1..36500; anything else is a
    usage error (never a silent default for a mistyped number)."""
    parts = (args or "").split()
    if not 1 <= len(parts) <= 2:
        return None
    user_id = bounds.parse_int(parts[0], bounds.USER_ID)
    days = bounds.parse_int(parts[1], bounds.GRANT_DAYS) if len(parts) == 2 else DEFAULT_DAYS
    if user_id is None or days is None:
        return None
    return user_id, days


def parse_id(args: str | None) -> int | None:
    parts = (args or "").split()
    return bounds.parse_int(parts[0], bounds.USER_ID) if len(parts) == 1 else None


async def adduser(message: Message, command: CommandObject, bot: Bot, pool: AsyncConnectionPool,
                  settings: Settings, tr: Translator) -> None:
    parsed = parse_adduser(command.args)
    if parsed is None:
        await message.answer(tr("admin.usage_adduser"))
        return
    user_id, days = parsed
    async with pool.connection() as conn:
        change = await access.grant(conn, user_id, days)
    if change.notify_granted:
        await send_access_granted(bot, settings, change.row)
    if change.row.expires_at is None:
        await message.answer(tr("admin.granted_permanent", id=user_id))
    else:
        await message.answer(tr("admin.granted", id=user_id, date=day(change.row.expires_at)))


async def ban(message: Message, command: CommandObject, pool: AsyncConnectionPool, settings: Settings,
              tr: Translator) -> None:
    user_id = parse_id(command.args)
    if user_id is None:
        await message.answer(tr("admin.usage_ban"))
        return
    async with pool.connection() as conn:
        result = await access.ban(conn, user_id, settings)
    if result is access.BanResult.refused_admin:
        await message.answer(tr("admin.ban_refused"))
    else:
        await message.answer(tr("admin.banned", id=user_id))


async def unban(message: Message, command: CommandObject, pool: AsyncConnectionPool, tr: Translator) -> None:
    user_id = parse_id(command.args)
    if user_id is None:
        await message.answer(tr("admin.usage_unban"))
        return
    async with pool.connection() as conn:
        row = await access.unban(conn, user_id)
    await message.answer(tr("admin.unbanned", id=user_id) if row else tr("admin.not_banned", id=user_id))


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.middleware(SuperAdminOnly())
    router.message.register(adduser, Command("adduser"))
    router.message.register(ban, Command("ban"))
    router.message.register(unban, Command("unban"))
    return router
