"""GET /health: one entry per component; 503 naming what is down. Never shows settings."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.state import AppState, app_state

_PROBE_TIMEOUT_S = 3


async def _postgres(state: AppState) -> None:
    async with state.pool.connection(timeout=_PROBE_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")


async def _redis(state: AppState) -> None:
    await state.redis.ping()


async def _probe(check: Any, state: AppState) -> dict[str, Any]:
    try:
        await asyncio.wait_for(check(state), _PROBE_TIMEOUT_S)
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


async def health(request: Request) -> JSONResponse:
    state = app_state(request)
    results = await asyncio.gather(_probe(_postgres, state), _probe(_redis, state))
    components: dict[str, Any] = dict(zip(("postgres", "redis"), results, strict=True))
    down = [name for name, result in components.items() if not result["ok"]]
    body = {"status": "down" if down else "ok", "down": down, "components": components}
    return JSONResponse(body, status_code=503 if down else 200)
