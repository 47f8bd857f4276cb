"""What the lifespan opens and every endpoint uses, handed on as typed state."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot, Dispatcher
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from starlette.requests import Request

from core.crypto import SecretBox
from core.settings import Settings
from services.metrics import BufferedMetrics
from userbot.gateway import AccountGateway


@dataclass(slots=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    bot: Bot
    dispatcher: Dispatcher
    gateway: AccountGateway
    box: SecretBox
    metrics: BufferedMetrics


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.tgcast
    return state
