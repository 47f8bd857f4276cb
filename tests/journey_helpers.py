"""Shared steps of the user-journey tests: access, the FSM state, and a real login through the bot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from aiogram.fsm.storage.base import StorageKey
from starlette.applications import Starlette

from db import users
from tests.harness import Telegram, TgUser
from userbot.fake import FakeGroup, FakeTelegram

PHONE = "+998901234567"


async def allow(db: psycopg.AsyncConnection, user: TgUser, *, expires_at: datetime | None = None) -> None:
    """Access granted explicitly, so the tests stay right once the access check is in place."""
    await users.set_access(db, user.id, status="active", expires_at=expires_at)
    await db.execute(
        "UPDATE bot_users SET first_name = %(f)s, username = %(u)s, language_code = %(l)s WHERE user_id = %(id)s",
        {"f": user.first_name, "u": user.username, "l": user.language_code, "id": user.id},
    )


async def fsm_state(app: Starlette, user: TgUser) -> str | None:
    state = app.state.tgcast
    key = StorageKey(bot_id=state.bot.id, chat_id=user.id, user_id=user.id)
    return await state.dispatcher.storage.get_state(key)


def spaced(code: str) -> str:
    return " ".join(code)


async def add_groups(net: FakeTelegram, tg_user_id: int, groups: Sequence[FakeGroup]) -> None:
    for group in groups:
        await net.add_group(group, members=[tg_user_id])


def make_groups(n: int, *, start: int = 1, title: str = "Group") -> list[FakeGroup]:
    return [FakeGroup(-1001000000000 - i, f"{title} {i:02d}", access_hash=1000 + i) for i in range(start, start + n)]


async def log_in(
    tg: Telegram, net: FakeTelegram, user: TgUser, *, phone: str = PHONE, groups: Sequence[FakeGroup] = (),
    password: str | None = None, tg_user_id: int | None = None,
) -> int:
    """Drive the real login flow; returns the account's Telegram user id."""
    uid = await net.add_account(phone, password=password, tg_user_id=tg_user_id)
    await add_groups(net, uid, groups)
    await tg.press(user, "login")
    await tg.send(user, phone)
    code = await net.last_code(phone)
    assert code is not None
    await tg.send(user, spaced(code))
    if password is not None:
        await tg.send(user, password)
    return uid
