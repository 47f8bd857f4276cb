"""Chooses the gateway implementation from the settings."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from core.settings import Settings, SettingsError
from userbot.fake import FakeGateway, FakeTelegram
from userbot.gateway import AccountGateway
from userbot.latency import LatencyModel


def fake_network(settings: Settings, redis: Redis) -> FakeTelegram:
    """The emulator on the service's Redis, or on its own when FAKE_REDIS_URL is set (the client then
    lives as long as the process, like the network it stands for)."""
    if settings.fake_redis_url:
        redis = Redis.from_url(settings.fake_redis_url, socket_timeout=10, socket_connect_timeout=5)
    latency = LatencyModel(settings.fake_connect_ms, settings.fake_send_p50_ms, settings.fake_send_p99_ms,
                           conn_kib=settings.fake_conn_kib, ping_every_s=settings.fake_ping_every_s,
                           ping_cpu_ms=settings.fake_ping_cpu_ms)
    return FakeTelegram(redis, prefix=f"{settings.redis_prefix}fake:", auto_accounts=settings.sandbox,
                        latency=latency, random_id_ttl_s=settings.fake_random_id_ttl_s)


def build_gateway(settings: Settings, redis: Redis) -> AccountGateway:
    if settings.use_fake_gateway:
        return FakeGateway(fake_network(settings, redis), request_timeout_s=settings.request_timeout_s)
    from userbot.telethon_gateway import TelethonGateway  # Telethon only where it is used

    if settings.api_id is None or settings.api_hash is None:
        # Emulated accounts are never a silent fallback: SANDBOX=1 or GATEWAY=fake asks for them.
        raise SettingsError("setting API_ID is missing" if settings.api_id is None else "setting API_HASH is missing")
    key = Path(settings.telegram_public_key_file).read_text() if settings.telegram_public_key_file else None
    address, _, port = (settings.telegram_dc_address or "").partition(":")
    return TelethonGateway(
        settings.api_id,
        settings.api_hash.get_secret_value(),
        dc=settings.telegram_dc,
        dc_address=address or None,
        dc_port=int(port or 443),
        public_key_pem=key,
        request_timeout_s=settings.request_timeout_s,
    )
