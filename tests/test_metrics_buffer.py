"""Webhook metrics are summed in the web process and written to Redis in one flush."""

from __future__ import annotations

from api.app import create_app
from services.metrics import BufferedMetrics, Metrics
from tests.harness import Telegram, TgUser


async def test_buffered_recordings_reach_redis_only_on_flush(redis, settings) -> None:
    buffered = BufferedMetrics(redis, settings.redis_prefix)
    reader = Metrics(redis, settings.redis_prefix)
    for _ in range(3):
        async with buffered.pipeline() as m:
            m.inc("tgcast_webhook_updates_total", type="message")
            m.observe("tgcast_webhook_latency_seconds", 0.05)
    key = f"{settings.redis_prefix}metrics:tgcast_webhook_updates_total"
    assert await redis.hgetall(key) == {}
    await buffered.flush()
    assert {k.decode(): int(v) for k, v in (await redis.hgetall(key)).items()} == {'["message"]': 3}
    latency = next(f for f in await reader.collect() if f.spec.name == "tgcast_webhook_latency_seconds")
    assert latency is not None
    await buffered.flush()  # nothing pending: nothing added twice
    assert int((await redis.hgetall(key))[b'["message"]']) == 3


async def test_counts_recorded_before_shutdown_are_flushed(settings, botapi, redis, admin: TgUser) -> None:
    import httpx

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await Telegram(client, botapi, "http://unused", "0:x").send(admin, "/id")
    raw = await redis.hgetall(f"{settings.redis_prefix}metrics:tgcast_webhook_updates_total")
    assert int(raw[b'["message"]']) == 1
