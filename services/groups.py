"""The accounts' writable groups (through the gateway, cached briefly) and the user's list of them."""

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
from db.rows import Account
from userbot.gateway import AccountGateway, GatewayError, GroupInfo

log = logging.getLogger(__name__)

CACHE_TTL_S = 60
# Listing runs inside the webhook request: never longer than this (a very large account or a slow
# Telegram then gets "try again" instead of holding the request).
LIST_TIMEOUT_S = 8
FLOOD_CODE = "FLOOD_WAIT_X"


class NotLoggedIn(Exception):
    pass


def cache_key(settings: Settings, owner_id: int, account_id: int) -> str:
    return f"{settings.redis_prefix}groups:{owner_id}:{account_id}"


def flood_key(settings: Settings, owner_id: int, account_id: int) -> str:
    """Set while Telegram asks this account to wait before listing again (expires with the wait)."""
    return f"{settings.redis_prefix}groups_flood:{owner_id}:{account_id}"


@dataclass(frozen=True, slots=True)
class Toggled:
    group: GroupInfo
    added: bool


@dataclass(frozen=True, slots=True)
class Reach:
    """The groups the user's active accounts may post to, each once (the first account's first), and
    which accounts reach each one, in the accounts' order."""

    groups: list[GroupInfo]
    accounts: dict[int, list[int]]  # chat id -> account ids

    def first_accounts(self) -> dict[int, int]:
        return {chat_id: ids[0] for chat_id, ids in self.accounts.items()}


class AccountGroups:
    def __init__(self, redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings) -> None:
        self.redis = redis
        self.gateway = gateway
        self.box = box
        self.settings = settings

    async def listed_by(self, account: Account) -> list[GroupInfo]:
        """Every group this account may post to now; raises GatewayError when Telegram fails or asks to
        wait (FLOOD_WAIT_X, `seconds` left) and TIMEOUT when the listing takes longer than LIST_TIMEOUT_S.

        Cached for a minute: paging through a long list must not cost one dialog scan per press,
        and Telegram rate-limits dialog listing. A flood wait is remembered until it ends, so
        presses during it do not ask Telegram again (which could lengthen the wait)."""
        key = cache_key(self.settings, account.owner_id, account.id)
        cached = await self.redis.get(key)
        if cached is not None:
            return [GroupInfo(**g) for g in json.loads(cached)]
        flood = flood_key(self.settings, account.owner_id, account.id)
        wait_ms = await self.redis.pttl(flood)
        if wait_ms > 0:
            raise GatewayError(FLOOD_CODE, seconds=-(-wait_ms // 1000))
        try:
            async with asyncio.timeout(LIST_TIMEOUT_S):
                found = list(await self.gateway.list_groups(self.box.decrypt(account.session_enc)))
        except TimeoutError:
            log.info("list_groups for account %s took longer than %s s", account.id, LIST_TIMEOUT_S)
            raise GatewayError("TIMEOUT", detail=f"listing groups took longer than {LIST_TIMEOUT_S} s") from None
        except GatewayError as exc:
            log.info("list_groups failed for account %s: %s", account.id, exc)
            if exc.code == FLOOD_CODE and exc.seconds:
                await self.redis.set(flood, exc.seconds, ex=exc.seconds)
            raise
        await self.redis.set(key, json.dumps([asdict(g) for g in found]), ex=CACHE_TTL_S)
        return found

    async def reach(self, conn: AsyncConnection, owner_id: int) -> Reach:
        """The groups of every active account of the owner, merged; raises NotLoggedIn without one. An
        account whose listing fails is left out while another answers; when none does, the first
        failure is raised."""
        active = [a for a in await accounts.list_for_owner(conn, owner_id) if a.status == "active"]
        if not active:
            raise NotLoggedIn
        merged: dict[int, GroupInfo] = {}
        reached: dict[int, list[int]] = {}
        failure: GatewayError | None = None
        answered = False
        for account in active:
            try:
                found = await self.listed_by(account)
            except GatewayError as exc:
                failure = failure or exc
                continue
            answered = True
            for group in found:
                merged.setdefault(group.chat_id, group)
                reached.setdefault(group.chat_id, []).append(account.id)
        if not answered:
            assert failure is not None
            raise failure
        return Reach(list(merged.values()), reached)

    async def listed(self, conn: AsyncConnection, owner_id: int) -> list[GroupInfo]:
        """Every group the user's accounts may post to now, each once (see `reach`)."""
        return (await self.reach(conn, owner_id)).groups

    async def forget(self, conn: AsyncConnection, owner_id: int) -> None:
        keys = [cache_key(self.settings, owner_id, a.id) for a in await accounts.list_for_owner(conn, owner_id)]
        if keys:
            await self.redis.delete(*keys)

    async def toggle(self, conn: AsyncConnection, owner_id: int, chat_id: int) -> Toggled | None:
        """Add the group to the list or take it out; None when no account of the user has such a group
        (the callback's chat id is user input). A group added is posted to from the first account that
        reaches it, unless it already has an account."""
        reach = await self.reach(conn, owner_id)
        group = next((g for g in reach.groups if g.chat_id == chat_id), None)
        if group is None:
            return None
        if await db_groups.deselect(conn, owner_id, chat_id) is not None:
            return Toggled(group, added=False)
        await db_groups.select(conn, owner_id, [group], reach.first_accounts())
        return Toggled(group, added=True)

    async def add_all(self, conn: AsyncConnection, owner_id: int) -> tuple[int, int]:
        """Returns (newly added, already in the list)."""
        reach = await self.reach(conn, owner_id)
        added = await db_groups.select(conn, owner_id, reach.groups, reach.first_accounts())
        return added, len(reach.groups) - added
