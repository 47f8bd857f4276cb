"""POST /tick: the external cron's entry to the tick (jobs/tick.py) (TICK_TOKEN as a bearer token)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import bearer, token_matches
from api.state import app_state
from jobs.tick import record_tick, tick
from services.outage import TRY_LATER


async def tick_endpoint(request: Request) -> JSONResponse:
    state = app_state(request)
    if not token_matches(bearer(request), state.settings.tick_token):
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        summary = await tick(state.pool, state.settings)
    except TRY_LATER as exc:
        # Overload or an outage: the cron calls again within a minute and carries on (cycles are
        # committed whole, and the next tick's recovery enqueues any job this one did not).
        await record_tick(state.redis, state.settings, None)
        return JSONResponse({"error": "temporarily unavailable", "reason": type(exc).__name__}, status_code=503,
                            headers={"Retry-After": "5"})
    except Exception:
        await record_tick(state.redis, state.settings, None)
        raise
    await record_tick(state.redis, state.settings, summary)
    return JSONResponse(summary.as_json())
