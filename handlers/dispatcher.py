"""Builds the aiogram Bot and Dispatcher used by both the webhook and long polling."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import ErrorEvent
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.i18n import Translator
from core.settings import Settings
from handlers import build_router, payments
from handlers.middlewares.access import AccessGate, AccessMiddleware
from handlers.middlewares.context import ContextMiddleware
from services.metrics import Metrics
from services.outage import TRY_LATER
from userbot.gateway import AccountGateway

log = logging.getLogger(__name__)


def build_bot(settings: Settings) -> Bot:
    session = AiohttpSession()
    if settings.bot_api_base:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.bot_api_base))
    return Bot(settings.bot_token_value(), session=session, default=DefaultBotProperties(parse_mode="HTML"))


async def _on_error(
    event: ErrorEvent, bot: Bot, tr: Translator | None = None, metrics: Metrics | None = None
) -> Any:
    update = event.update
    if isinstance(event.exception, TRY_LATER):  # an outage (services/outage.py), not a bug
        return UNHANDLED  # re-raised to the webhook (api/webhook.py), which answers 503
    if metrics is not None:  # given by the webhook (api/webhook.py), not by long polling
        await metrics.inc("tgcast_webhook_errors_total", kind="handler")
    log.error(
        "handler failed on update %s: %s", update.update_id, type(event.exception).__name__,
        exc_info=event.exception,
    )
    user = None
    if update.message and update.message.from_user:
        user = update.message.from_user
    elif update.callback_query:
        user = update.callback_query.from_user
    if user is not None:
        try:
            await bot.send_message(user.id, (tr or Translator("en"))("common.error"))
        except Exception:  # the user is told when possible; the failure is already logged
            log.warning("could not tell user %s about the error", user.id)
    return True


def build_dispatcher(
    settings: Settings,
    *,
    redis: Redis,
    pool: AsyncConnectionPool,
    gateway: AccountGateway,
    box: SecretBox,
    **extra: Any,
) -> Dispatcher:
    storage = RedisStorage(
        redis, key_builder=DefaultKeyBuilder(prefix=f"{settings.redis_prefix}fsm", with_bot_id=True)
    )
    dispatcher = Dispatcher(
        storage=storage,
        # Several web replicas may get two updates of one user at once: isolate them through Redis.
        events_isolation=storage.create_isolation(),
        settings=settings,
        redis=redis,
        pool=pool,
        gateway=gateway,
        box=box,
        **extra,
    )
    for observer in (dispatcher.message, dispatcher.callback_query):
        observer.outer_middleware(ContextMiddleware())
        observer.outer_middleware(AccessMiddleware())
        # The access check's second half: it needs the chosen handler's flags (public, allow_expired).
        observer.middleware(AccessGate())
    dispatcher.errors.register(_on_error)
    # Payments first: a payment message is recorded whatever conversation the payer is in.
    dispatcher.include_router(payments.make_router(settings))
    dispatcher.include_router(build_router())
    return dispatcher
