"""What the lifespan opens and every endpoint uses, handed on as typed state."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from starlette.requests import Request

from core.crypto import SecretBox
from core.settings import Settings
from services.metrics import BufferedMetrics

if TYPE_CHECKING:
    from aiogram import Bot, Dispatcher

    from api.bot_side import BotSide
    from userbot.gateway import AccountGateway


@dataclass(slots=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    box: SecretBox
    metrics: BufferedMetrics
    # Built on the first update (api/bot_side.py says why): a web process that has only served
    # /tick, /health and /metrics has not imported aiogram.
    _bot_side: BotSide | None = field(default=None, init=False)
    _loading: asyncio.Lock | None = field(default=None, init=False)

    async def bot_side(self) -> BotSide:
        """The Bot and Dispatcher, imported off the event loop the first time: ~2.5 s of imports
        would otherwise stall every request (and the tick) in flight."""
        if self._bot_side is None:
            if self._loading is None:
                self._loading = asyncio.Lock()
            async with self._loading:
                if self._bot_side is None:
                    await asyncio.to_thread(importlib.import_module, "api.bot_side")
                    self._build()
        assert self._bot_side is not None
        return self._bot_side

    def _build(self) -> BotSide:
        if self._bot_side is None:
            from api import bot_side

            self._bot_side = bot_side.build(self.settings, redis=self.redis, pool=self.pool, box=self.box)
        return self._bot_side

    # Synchronous access (tests, the sandbox): builds on the spot when no update has yet.
    @property
    def bot(self) -> Bot:
        return self._build().bot

    @property
    def dispatcher(self) -> Dispatcher:
        return self._build().dispatcher

    @property
    def gateway(self) -> AccountGateway:
        return self._build().gateway

    @property
    def bot_loaded(self) -> bool:
        return self._bot_side is not None

    async def aclose(self) -> None:
        if self._bot_side is not None:
            await self._bot_side.aclose()


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.tgcast
    return state
