"""The same dispatcher and router served by aiogram's own aiohttp webhook handler (comparison (b))."""

from __future__ import annotations

import argparse
import asyncio

from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import load_settings
from db.pool import open_pool
from handlers.dispatcher import build_bot, build_dispatcher
from userbot.factory import build_gateway


async def main(port: int) -> None:
    settings = load_settings()
    pool = await open_pool(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    bot = build_bot(settings)
    dispatcher = build_dispatcher(settings, redis=redis, pool=pool, gateway=build_gateway(settings, redis),
                                  box=SecretBox(settings.session_keys))
    app = web.Application()
    assert settings.webhook_secret is not None
    # handle_in_background=False: answer after handling, as our endpoint does (a like-for-like comparison).
    SimpleRequestHandler(dispatcher, bot, handle_in_background=False,
                         secret_token=settings.webhook_secret.get_secret_value()).register(app, "/telegram/webhook")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
