"""Who may use the bot now, and the admin's changes to it (grant, adjust, ban, unban).

`is_super_admin` is the one rule for super admins and `is_allowed` the one rule for everyone else;
the handlers (context middleware, admin guard), the tick, the send batch and the ban guard all go
through them. Super admins are the ids in ADMIN_IDS and the ids that usernames in ADMIN_USERNAMES
were resolved to (recorded in PostgreSQL the first time that username wrote to the bot), so the
worker and the tick, which never see a username, decide exactly as the handlers do.

Every change runs on the row locked `FOR UPDATE`, so two admins pressing at once are applied in turn
and the "access granted" message is claimed by exactly one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from psycopg import AsyncConnection

from core import bounds
from core.settings import Settings
from db import users
from db.rows import BotUser
from services import broadcast

log = logging.getLogger(__name__)

MAX_GRANT_DAYS = bounds.GRANT_DAYS.high


def is_super_admin(settings: Settings, user_id: int, resolved_usernames: Collection[str] = ()) -> bool:
    """Listed by id, or resolved under a username that is still listed (taking a username out of
    ADMIN_USERNAMES takes the rights away from the id it was resolved to)."""
    return user_id in settings.admin_ids or not settings.admin_usernames.isdisjoint(resolved_usernames)


async def super_admin(conn: AsyncConnection, settings: Settings, user_id: int, *,
                      username: str | None = None) -> bool:
    """`is_super_admin` with the resolved usernames read from PostgreSQL. `username` is the one the
    user has now, as Telegram reports it on an update: when it is listed and not yet resolved, this
    id is recorded as its holder."""
    if user_id in settings.admin_ids or not settings.admin_usernames:
        return is_super_admin(settings, user_id)
    name = username.lower() if username else None
    seen_as = name if name in settings.admin_usernames else None
    found = await users.admin_usernames(conn, user_id, seen_as=seen_as)
    if found.resolved_now is not None:
        log.warning("ADMIN_USERNAMES: @%s resolved to id %s (first seen); prefer ADMIN_IDS=%s",
                    found.resolved_now, user_id, user_id)
    return is_super_admin(settings, user_id, found.usernames)


async def super_admin_ids(conn: AsyncConnection, settings: Settings) -> list[int]:
    """Every super admin known now (usernames never seen yet have no id), e.g. to notify them."""
    resolved = await users.resolved_admin_ids(conn, settings.admin_usernames)
    return sorted(set(settings.admin_ids) | set(resolved))


def is_allowed(row: BotUser | None, now: datetime, *, is_admin: bool = False) -> bool:
    """Super admins always (see `is_super_admin`); others with an active row that is permanent or not
    yet expired."""
    if is_admin:
        return True
    return row is not None and row.allowed_at(now)


def new_expiry(current: datetime | None, status: str, now: datetime, days: int) -> datetime | None:
    """`max(now, current) ± days`. An active row without expiry is permanent: adding keeps it
    permanent, subtracting counts from now."""
    if current is None and status == "active":
        return None if days > 0 else now + timedelta(days=days)
    base = now if current is None else max(now, current)
    return base + timedelta(days=days)


@dataclass(frozen=True, slots=True)
class AccessChange:
    row: BotUser
    notify_granted: bool  # the user just became allowed: send "access granted" (claimed once)
    stopped: bool  # the user's broadcast was stopped by this change


class UnknownUser(LookupError):
    """An admin action with `create=False` (a card's button) named an id that has no row."""


async def _locked(conn: AsyncConnection, user_id: int, *, create: bool) -> BotUser:
    if create:
        return await users.lock_or_create(conn, user_id)
    row = await users.lock(conn, user_id)
    if row is None:
        raise UnknownUser(user_id)
    return row


async def adjust(conn: AsyncConnection, user_id: int, days: int, now: datetime | None = None, *,
                 create: bool = True) -> AccessChange:
    """Move the expiry by `days`. A positive change is a grant: it activates the row and lifts a
    ban. An expiry moved into the past stops the user's broadcast. Without `create`, an id that has
    no row raises `UnknownUser` and nothing is written."""
    if days == 0 or abs(days) > MAX_GRANT_DAYS:
        raise ValueError("days out of range")
    now = now or datetime.now(UTC)
    async with conn.transaction():
        row = await _locked(conn, user_id, create=create)
        was_allowed = row.allowed_at(now)
        expiry = new_expiry(row.expires_at, row.status, now, days)
        status = "active" if days > 0 else row.status
        allowed_after = status == "active" and (expiry is None or expiry > now)
        notified = row.granted_notified_at
        notify = allowed_after and not was_allowed
        if notify:
            notified = now  # claimed under the row lock: a concurrent press sees the user allowed
        elif not allowed_after:
            notified = None  # the next grant is a new one and gets its own message
        row = await users.update_access(conn, user_id, status=status, expires_at=expiry,
                                        granted_notified_at=notified)
    stopped = False
    if not allowed_after:
        stopped, _ = await broadcast.stop(conn, user_id)
    return AccessChange(row, notify, stopped)


async def grant(conn: AsyncConnection, user_id: int, days: int, now: datetime | None = None) -> AccessChange:
    if not 1 <= days <= MAX_GRANT_DAYS:
        raise ValueError("days out of range")
    return await adjust(conn, user_id, days, now)


class BanResult(StrEnum):
    banned = "banned"
    refused_admin = "refused_admin"


async def ban(conn: AsyncConnection, user_id: int, settings: Settings, *, create: bool = True) -> BanResult:
    """Durable: the row keeps status banned (created if the user never wrote, unless `create` is
    off: then `UnknownUser`), and the broadcast stops at once. Super admins cannot be banned."""
    if await super_admin(conn, settings, user_id):
        return BanResult.refused_admin
    async with conn.transaction():
        row = await _locked(conn, user_id, create=create)
        await users.update_access(conn, user_id, status="banned", expires_at=row.expires_at,
                                  granted_notified_at=None)
    await broadcast.stop(conn, user_id)
    return BanResult.banned


async def unban(conn: AsyncConnection, user_id: int, now: datetime | None = None) -> BotUser | None:
    """A banned user goes back to pending (expired now) until access is granted again; returns None
    when the user was not banned (nothing changes)."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        row = await users.get(conn, user_id)
        if row is None or row.status != "banned":
            return None
        row = await users.lock_or_create(conn, user_id)
        if row.status != "banned":
            return None
        return await users.update_access(conn, user_id, status="pending", expires_at=now, granted_notified_at=None)
