"""The app factory and its lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from api.routing import routes
from api.state import AppState
from core.crypto import SecretBox
from core.settings import Settings, load_settings
from db.pool import open_pool
from services.metrics import BufferedMetrics

log = logging.getLogger(__name__)

# Webhook metrics are summed in the process and written to Redis this often (and before a scrape).
METRICS_FLUSH_S = 1.0


class SandboxApp(Protocol):
    """The sandbox page and its Bot API emulator (sandbox/web.py's `Sandbox`), handed in by the
    composition root (tgcast_cli.py) so that the web app never imports the sandbox."""

    async def start(self, state: AppState) -> None: ...

    def routes(self) -> list[BaseRoute]: ...


def create_app(settings: Settings | None = None, *, sandbox: SandboxApp | None = None) -> Starlette:
    settings = settings or load_settings()
    settings.check_live(accounts=True)  # fails closed: no emulator stands in for a missing credential
    # The sandbox with SANDBOX=1 and only then: the page acts as any user, so it is never mounted by
    # accident, and in sandbox mode the bot talks to the emulator that the sandbox mounts.
    if settings.sandbox != (sandbox is not None):
        raise ValueError("SANDBOX=1 and the sandbox app go together (tgcast_cli.web_app builds both)")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            # Each resource is closed even when a later one fails to open.
            pool = await open_pool(settings.database_url)
            stack.push_async_callback(pool.close)
            redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
            stack.push_async_callback(redis.aclose)
            box = SecretBox(settings.session_keys)
            metrics = BufferedMetrics(redis, settings.redis_prefix)
            stack.push_async_callback(metrics.flush)  # runs after the flusher below is cancelled
            flusher = asyncio.create_task(metrics.flush_every(METRICS_FLUSH_S))
            stack.callback(flusher.cancel)
            # The Bot, the Dispatcher and the gateway are built on the first update (api/bot_side.py).
            state = AppState(settings, pool, redis, box, metrics)
            stack.push_async_callback(state.aclose)
            app.state.tgcast = state
            if sandbox is not None:
                await sandbox.start(app.state.tgcast)
            if settings.admin_usernames:
                log.warning("ADMIN_USERNAMES is set: usernames can change hands; prefer numeric ADMIN_IDS")
            yield

    app_routes = routes()
    if sandbox is not None:
        # Sandbox mode: the bot talks to the built-in Bot API emulator mounted under /sandbox/botapi
        # (BOT_API_BASE points at it), beside the sandbox page, so no Telegram account is needed.
        app_routes.extend(sandbox.routes())
    return Starlette(routes=app_routes, lifespan=lifespan)
