"""The account's writable groups (through the gateway, cached briefly) and the user's list of them."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass

from psycopg import AsyncConnection
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import Settings
from db import accounts
from db import groups as db_groups
from userbot.gateway import AccountGateway, GatewayError, GroupInfo

log = logging.getLogger(__name__)

CACHE_TTL_S = 60
# Listing runs inside the webhook request: never longer than this (a very large account or a slow
# Telegram then gets "try again" instead of holding the request).
LIST_TIMEOUT_S = 8
FLOOD_CODE = "FLOOD_WAIT_X"


class NotLoggedIn(Exception):
    pass


def cache_key(settings: Settings, owner_id: int) -> str:
    return f"{settings.redis_prefix}groups:{owner_id}"


def flood_key(settings: Settings, owner_id: int) -> str:
    """Set while Telegram asks this account to wait before listing again (expires with the wait)."""
    return f"{settings.redis_prefix}groups_flood:{owner_id}"


@dataclass(frozen=True, slots=True)
class Toggled:
    group: GroupInfo
    added: bool


class AccountGroups:
    def __init__(self, redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings) -> None:
        self.redis = redis
        self.gateway = gateway
        self.box = box
        self.settings = settings

    def _key(self, owner_id: int) -> str:
        return cache_key(self.settings, owner_id)

    async def listed(self, conn: AsyncConnection, owner_id: int) -> list[GroupInfo]:
        """Every group the account may post to now; raises NotLoggedIn without an active account,
        GatewayError when Telegram fails or asks to wait (FLOOD_WAIT_X, `seconds` left) and TIMEOUT
        when the listing takes longer than LIST_TIMEOUT_S.

        Cached for a minute: paging through a long list must not cost one dialog scan per press,
        and Telegram rate-limits dialog listing. A flood wait is remembered until it ends, so
        presses during it do not ask Telegram again (which could lengthen the wait)."""
        cached = await self.redis.get(self._key(owner_id))
        if cached is not None:
            return [GroupInfo(**g) for g in json.loads(cached)]
        wait_ms = await self.redis.pttl(flood_key(self.settings, owner_id))
        if wait_ms > 0:
            raise GatewayError(FLOOD_CODE, seconds=-(-wait_ms // 1000))
        account = await accounts.get_active(conn, owner_id)
        if account is None:
            raise NotLoggedIn
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                found = list(await self.gateway.list_groups(self.box.decrypt(account.session_enc)))
        except TimeoutError:
            log.info("list_groups for user %s took longer than %s s", owner_id, LIST_TIMEOUT_S)
            raise GatewayError("TIMEOUT", detail=f"listing groups took longer than {LIST_TIMEOUT_S} s") from None
        except GatewayError as exc:
            log.info("list_groups failed for user %s: %s", owner_id, exc)
            if exc.code == FLOOD_CODE and exc.seconds:
                await self.redis.set(flood_key(self.settings, owner_id), exc.seconds, ex=exc.seconds)
            raise
        await self.redis.set(self._key(owner_id), json.dumps([asdict(g) for g in found]), ex=CACHE_TTL_S)
        return found

    async def forget(self, owner_id: int) -> None:
        await self.redis.delete(self._key(owner_id))

    async def toggle(self, conn: AsyncConnection, owner_id: int, chat_id: int) -> Toggled | None:
        """Add the group to the list or take it out; None when the account has no such group (the
        callback's chat id is user input)."""
        group = next((g for g in await self.listed(conn, owner_id) if g.chat_id == chat_id), None)
        if group is None:
            return None
        if await db_groups.deselect(conn, owner_id, chat_id) is not None:
            return Toggled(group, added=False)
        await db_groups.select(conn, owner_id, [group])
        return Toggled(group, added=True)

    async def add_all(self, conn: AsyncConnection, owner_id: int) -> tuple[int, int]:
        """Returns (newly added, already in the list)."""
        found = await self.listed(conn, owner_id)
        added = await db_groups.select(conn, owner_id, found)
        return added, len(found) - added
