"""Loads who is acting before any handler: their row, whether they are a super admin, their language."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from psycopg_pool import AsyncConnectionPool

from core import bounds
from core.i18n import Translator, person_language
from core.settings import Settings
from db import users
from services import access

log = logging.getLogger(__name__)


class ContextMiddleware(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        settings: Settings = data["settings"]
        pool: AsyncConnectionPool = data["pool"]
        if user is not None and user.id not in bounds.USER_ID:
            # No Telegram user has this id (they are positive, 64-bit): nothing reads or writes a row for it.
            log.info("update from id %s outside the user id range ignored", user.id)
            return None
        row = None
        is_admin = False
        if user is not None:
            async with pool.connection() as conn:
                row = await users.get(conn, user.id)
                if row is not None and user.language_code and row.language_code != user.language_code:
                    # At once, not with the hourly profile refresh (which skips super admins): the
                    # notices sent later from the workers must speak what this reply speaks.
                    await users.set_language_code(conn, user.id, user.language_code)
                    row = dataclasses.replace(row, language_code=user.language_code)
                # Also where a username listed in ADMIN_USERNAMES is resolved to this id, on first sight.
                is_admin = await access.super_admin(conn, settings, user.id, username=user.username)
                if row is None and is_admin and user.language_code:
                    # A super admin needs no row, but their language must be kept somewhere: the
                    # notices sent to them (requests, payments) speak what their replies speak.
                    await users.remember_admin_language_code(conn, user.id, user.language_code)
        data["user_row"] = row
        data["is_admin"] = is_admin
        lang = person_language(row, settings.default_language, user.language_code if user else None)
        data["tr"] = Translator(lang)
        return await handler(event, data)
