"""What a worker process opens once and every job reuses: settings, a psycopg pool, async Redis,
the account gateway, the Bot API client, the session box, and the event loop they all live on.

RQ job functions are plain sync functions of ids; each one runs its async body on this process's
`asyncio.Runner`, so connections survive from one job to the next instead of being opened per job.
The one instance per process is module state on purpose: RQ calls job functions by name and gives
them nothing else.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TypeVar

from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import Settings, load_settings
from db.pool import open_pool
from jobs.botapi import BotApiClient
from jobs.queues import sync_redis
from userbot.factory import build_gateway
from userbot.gateway import AccountGateway

T = TypeVar("T")

def bot_api_client(settings: Settings) -> BotApiClient:
    return BotApiClient(settings.bot_token_value(), settings.bot_api_base, timeout=15)


@dataclass(slots=True)
class JobContext:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    queue_redis: SyncRedis  # RQ is sync; used from a thread (asyncio.to_thread)
    gateway: AccountGateway
    botapi: BotApiClient
    box: SecretBox


async def open_context(settings: Settings, stack: AsyncExitStack) -> JobContext:
    pool = await open_pool(settings.database_url, min_size=1, max_size=4, relaxed_commit=True)
    stack.push_async_callback(pool.close)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    stack.push_async_callback(redis.aclose)
    queue_redis = sync_redis(settings)
    stack.callback(queue_redis.close)
    botapi = bot_api_client(settings)
    stack.push_async_callback(botapi.aclose)
    return JobContext(settings, pool, redis, queue_redis, build_gateway(settings, redis), botapi,
                      SecretBox(settings.session_keys))


class ProcessRuntime:
    """One event loop and one `JobContext` per process (per thread, for in-process test workers)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._runner = asyncio.Runner()
        self._stack = AsyncExitStack()
        self._context: JobContext | None = None

    def run(self, body: Callable[[JobContext], Awaitable[T]]) -> T:
        return self._runner.run(self._with_context(body))

    async def _with_context(self, body: Callable[[JobContext], Awaitable[T]]) -> T:
        if self._context is None:
            self._context = await open_context(self._settings or load_settings(), self._stack)
        return await body(self._context)

    def close(self) -> None:
        if self._context is not None:
            self._runner.run(self._stack.aclose())
            self._context = None
        self._runner.close()


_local = threading.local()
_default_settings: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Settings for runtimes created from now on (tests; the worker command loads them from env)."""
    global _default_settings
    _default_settings = settings


def runtime() -> ProcessRuntime:
    current: ProcessRuntime | None = getattr(_local, "runtime", None)
    if current is None:
        current = ProcessRuntime(_default_settings)
        _local.runtime = current
    return current


def close_runtime() -> None:
    current: ProcessRuntime | None = getattr(_local, "runtime", None)
    if current is not None:
        current.close()
        _local.runtime = None
