"""GET /metrics: Prometheus text format, the same numbers whichever replica answers.

With METRICS_TOKEN set, the scraper must send `Authorization: Bearer <token>`; without it the
endpoint is open (keep it on a private network then).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from api.auth import bearer, token_matches
from api.state import app_state
from services.gauges import scrape
from services.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)


async def metrics(request: Request) -> Response:
    state = app_state(request)
    expected = state.settings.metrics_token
    if expected is not None and not token_matches(bearer(request), expected):
        return PlainTextResponse("unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"})
    try:
        await state.metrics.flush()  # this replica's latest webhook counts, before reading the totals
        body = await scrape(state.settings, state.pool, state.redis)
    except Exception as exc:
        # A half-rendered scrape would read as counters dropping to zero; fail the whole scrape instead.
        log.warning("metrics scrape failed: %s", type(exc).__name__)
        return PlainTextResponse("scrape failed\n", status_code=503)
    return Response(body, media_type=CONTENT_TYPE)
