"""The aiogram side of the web process: the Bot, the Dispatcher (with the account gateway its handlers
use) and the webhook's parsing of updates and replies.

Importing aiogram costs ~155 MiB of RSS and ~2.5 s (its few hundred pydantic models are built at
import), and only the webhook needs it: `/tick`, `/health`, `/metrics` and `/ops` never do. So this
module is imported on the first update (api/state.py, `AppState.bot_side`), not at start-up, and
nothing on those paths may import it or aiogram (tests/test_lazy_aiogram.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import Settings
from handlers.dispatcher import build_bot, build_dispatcher
from userbot.factory import build_gateway
from userbot.gateway import AccountGateway


@dataclass(slots=True)
class BotSide:
    bot: Bot
    dispatcher: Dispatcher
    gateway: AccountGateway

    def parse_update(self, payload: dict[str, Any]) -> Update:
        """Raises pydantic's ValidationError for what is not an update."""
        return Update.model_validate(payload, context={"bot": self.bot})

    def method_response(self, result: Any) -> dict[str, Any] | None:
        """The handler's method as a webhook reply, or None when it must be called instead (files)."""
        if not isinstance(result, TelegramMethod):
            return None
        files: dict[str, Any] = {}
        body: dict[str, Any] = {"method": result.__api_method__}
        for key, value in result.model_dump(warnings=False).items():
            prepared = self.bot.session.prepare_value(value, bot=self.bot, files=files)
            if prepared is not None:
                body[key] = prepared
        return None if files else body

    @staticmethod
    def is_method(result: Any) -> bool:
        return isinstance(result, TelegramMethod)

    @staticmethod
    def event(update: Update) -> Any:
        try:
            return update.event
        except Exception:  # an update kind aiogram does not know yet
            return None

    @staticmethod
    def update_type(update: Update) -> str:
        try:
            return update.event_type
        except Exception:  # an update kind aiogram does not know yet
            return "unknown"

    async def aclose(self) -> None:
        await self.bot.session.close()


def build(settings: Settings, *, redis: Redis, pool: AsyncConnectionPool, box: SecretBox) -> BotSide:
    # The gateway too: with real accounts it imports Telethon (~50 MiB), and in the web process only
    # the handlers (login, groups) use it.
    gateway = build_gateway(settings, redis)
    bot = build_bot(settings)
    dispatcher = build_dispatcher(settings, redis=redis, pool=pool, gateway=gateway, box=box)
    return BotSide(bot, dispatcher, gateway)

