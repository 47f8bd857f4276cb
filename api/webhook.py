"""POST /telegram/webhook: the only way updates enter the web process.

Telegram redelivers an update until it gets a 2xx, so once the secret is right the answer is 200
whatever happens inside: a failing handler is logged and the user gets a short error instead.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.state import AppState, app_state
from core.logs import log_context
from services.outage import TRY_LATER

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
DEDUP_TTL_S = 24 * 3600
SECRET_HEADER = "x-telegram-bot-api-secret-token"
RETRY_AFTER_S = "5"


class BodyTooLarge(Exception):
    pass


async def _read_bounded(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BodyTooLarge
    return bytes(body)


def _secret_ok(state: AppState, given: str | None) -> bool:
    expected = state.settings.webhook_secret
    if expected is None or given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())


def _without_nul(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL; U+FFFD keeps the UTF-16 length, so entity offsets stay right."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value


async def telegram_webhook(request: Request) -> JSONResponse:
    state = app_state(request)
    metrics = state.metrics
    if not _secret_ok(state, request.headers.get(SECRET_HEADER)):
        await metrics.inc("tgcast_webhook_errors_total", kind="unauthorized")
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    try:
        raw = await _read_bounded(request)
    except BodyTooLarge:
        await metrics.inc("tgcast_webhook_errors_total", kind="too_large")
        return JSONResponse({"error": "body too large"}, status_code=413)
    # aiogram is imported on the first update, not at start-up (api/bot_side.py).
    side = await state.bot_side()
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
        update = side.parse_update(_without_nul(payload))
    except (ValueError, ValidationError, RecursionError):  # RecursionError: absurdly deep nesting
        await metrics.inc("tgcast_webhook_errors_total", kind="bad_update")
        return JSONResponse({"error": "not a Telegram update"}, status_code=400)

    key = f"{state.settings.redis_prefix}update:{side.bot.id}:{update.update_id}"
    try:
        first_time = await state.redis.set(key, 1, nx=True, ex=DEDUP_TTL_S)
    except RedisError:
        # Without Redis there is neither de-duplication nor FSM state: let Telegram redeliver later.
        await metrics.inc("tgcast_webhook_errors_total", kind="unavailable")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER_S})
    if not first_time:
        await metrics.inc("tgcast_webhook_duplicates_total")
        return JSONResponse({})  # a redelivery: already handled once

    started = time.perf_counter()
    ids: dict[str, Any] = {"update_id": update.update_id}
    sender = getattr(side.event(update), "from_user", None)
    if sender is not None:
        ids["user_id"] = sender.id
    token = log_context.set(ids)
    try:
        # `metrics` reaches the dispatcher's error handler, which counts the handlers' failures.
        result = await side.dispatcher.feed_update(side.bot, update, metrics=metrics)
    except TRY_LATER as exc:
        # Forget the update id, or the redelivery would be dropped as a duplicate.
        log.warning("update %s deferred: %s", update.update_id, type(exc).__name__)
        try:
            await state.redis.delete(key)
        except RedisError:
            pass  # Redis is what failed: the key may outlive the outage (24 h) and the update is lost
        await metrics.inc("tgcast_webhook_errors_total", kind="unavailable")
        return JSONResponse({"error": "temporarily unavailable"}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER_S})
    except Exception:
        # The dispatcher's error handler already answered the user; this is the last line of defence.
        log.exception("update %s failed outside the handlers", update.update_id)
        await metrics.inc("tgcast_webhook_errors_total", kind="dispatch")
        return JSONResponse({})
    finally:
        log_context.reset(token)
    reply = side.method_response(result)
    if reply is None and side.is_method(result):
        await side.bot(result)
    async with metrics.pipeline() as m:
        m.inc("tgcast_webhook_updates_total", type=side.update_type(update))
        m.observe("tgcast_webhook_latency_seconds", time.perf_counter() - started)
    return JSONResponse(reply or {})
