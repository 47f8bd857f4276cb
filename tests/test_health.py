"""GET /health."""

from __future__ import annotations

from redis.asyncio import Redis


async def test_health_ok_when_everything_is_up(client) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["down"] == []


async def test_health_503_names_redis_when_unreachable(app, client) -> None:
    state = app.state.tgcast
    real = state.redis
    state.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        response = await client.get("/health")
    finally:
        await state.redis.aclose()
        state.redis = real
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]


async def test_health_never_shows_settings(client, settings) -> None:
    text = (await client.get("/health")).text
    for secret in settings.secret_values():
        assert secret not in text
    assert settings.database_url not in text
