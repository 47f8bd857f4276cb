"""Long polling with the same dispatcher as the webhook, for running without a public URL."""

from __future__ import annotations

from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import Settings
from db.pool import open_pool
from handlers.dispatcher import build_bot, build_dispatcher
from userbot.factory import build_gateway


async def run_polling(settings: Settings) -> None:
    pool = await open_pool(settings.database_url)
    redis = Redis.from_url(settings.redis_url)
    bot = build_bot(settings)
    box = SecretBox(settings.session_keys)
    dispatcher = build_dispatcher(
        settings, redis=redis, pool=pool, gateway=build_gateway(settings, redis), box=box
    )
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        await dispatcher.start_polling(bot, handle_signals=True)
    finally:
        await redis.aclose()
        await pool.close()
