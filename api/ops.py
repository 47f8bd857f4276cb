"""GET /ops: one server-rendered page an operator reads at a glance (no scripts, no build step): the
templates in api/templates/ (Jinja2 through Starlette, autoescaped), the figures from services.gauges.

Protected by its own OPS_TOKEN (unset: the page is off, 404), sent as `Authorization: Bearer` or
typed once into the login form, which sets a signed, expiring, HttpOnly, SameSite=Strict cookie
(Secure over https). Never in the URL: proxies and browser history keep URLs. And never the tick
token: a page link must not be able to drive `/tick`. The page is for operators, not bot users, so
its words are plain English here rather than catalog keys.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

import jinja2
from itsdangerous import BadSignature, Signer
from markupsafe import Markup
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from api.auth import bearer, token_matches
from api.state import app_state
from core.chart import Column, svg_bar_chart
from db.ops import HourCount
from services.gauges import OpsSnapshot, snapshot

log = logging.getLogger(__name__)

# Past these the figure is shown in red: the same thresholds as infra/prometheus/alerts.yml.
_TICK_STALE_S = 300
_LAG_P95_BAD_MS = 60_000

COOKIE = "tgcast_ops"
SESSION_S = 12 * 3600  # a signed-in browser is asked for the token again after this
_LOGIN_BODY_MAX = 4096
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                       "form-action 'self'; frame-ancestors 'none'"}
_DISABLED = "the operator page is off: set OPS_TOKEN to turn it on\n"


def session_cookie(token: SecretStr, expires: int) -> str:
    """`<expiry>.<signature of it under OPS_TOKEN>` (itsdangerous): the token itself never sits in the
    browser, changing OPS_TOKEN signs every browser out, and a copied cookie stops working when it
    expires."""
    return _signer(token).sign(str(expires)).decode()


def _signer(token: SecretStr) -> Signer:
    return Signer(token.get_secret_value(), salt="ops-session", digest_method=hashlib.sha256)


def _cookie_valid(value: str | None, token: SecretStr, now: float) -> bool:
    try:
        expires = _signer(token).unsign(value or "").decode()
    except BadSignature:
        return False
    return expires.isdigit() and int(expires) >= now


def _authorized(request: Request, token: SecretStr) -> bool:
    return token_matches(bearer(request), token) or _cookie_valid(request.cookies.get(COOKIE), token, time.time())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ms(value: float | None) -> str:
    return "–" if value is None else _duration(value / 1000) if value >= 1000 else f"{value:.0f} ms"


# Every value a template shows is escaped (autoescape on for every template, not only *.html), so
# nothing a user or Telegram typed (a plan name, a pause reason) can become markup on the page.
_TEMPLATES = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.PackageLoader("api", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True,
    undefined=jinja2.StrictUndefined))
_TEMPLATES.env.filters.update(duration=_duration, ms=_ms)

_COLOURS = {"sent": "#2e90fa", "failed": "#f04438"}


def chart(per_hour: list[HourCount]) -> Markup:
    """Stacked bars (sent, failed) per hour (core/chart.py's SVG, which escapes what it writes);
    labels every third hour."""
    columns = [Column((h.sent, h.failed), f"{h.hour:%H}:00 sent {h.sent}, failed {h.failed}",
                      f"{h.hour:%H}h" if i % 3 == 0 else None) for i, h in enumerate(per_hour)]
    svg = svg_bar_chart(columns, list(_COLOURS.items()), ident="per-hour-chart",
                        title="Deliveries per hour, last 24 hours")
    return Markup(svg)  # noqa: S704 - markup core.chart built, escaping every text it holds


def _page_context(snap: OpsSnapshot, now: datetime) -> dict[str, object]:
    """What ops.html shows, the figures put in rows; the template only lays them out."""
    totals = ("payments", "stars", "refunds", "refunded_stars", "renewing")
    return {
        "snap": snap, "now": now, "colours": _COLOURS, "chart": chart(snap.per_hour),
        "tick_stale": snap.last_tick_age_s is None or snap.last_tick_age_s > _TICK_STALE_S,
        "lag_bad": (snap.lag.p95_ms or 0) > _LAG_P95_BAD_MS,
        "total_sent": sum(h.sent for h in snap.per_hour),
        "total_failed": sum(h.failed for h in snap.per_hour),
        "queue_rows": [[q.name, q.depth, q.scheduled] for q in snap.queues],
        "lag_rows": [["p50", _ms(snap.lag.p50_ms)], ["p95", _ms(snap.lag.p95_ms)], ["p99", _ms(snap.lag.p99_ms)]],
        "paused_rows": [[p.owner_id, p.pause_reason or "flood", f"{p.flood_until:%d %b %H:%M}",
                         _duration((p.flood_until - now).total_seconds())] for p in snap.paused],
        "payment_rows": [[t.plan, *(getattr(t, f) for f in totals)] for t in snap.payments],
        "payment_total": ["all plans", *(sum(getattr(t, f) for t in snap.payments) for f in totals)],
    }


def _login_form(request: Request, note: str | None = None) -> Response:
    return _TEMPLATES.TemplateResponse(request, "ops_login.html", {"note": note}, status_code=401,
                                       headers={**_HEADERS, "WWW-Authenticate": "Bearer"})


async def ops_page(request: Request) -> Response:
    state = app_state(request)
    token = state.settings.ops_token
    if token is None:
        return PlainTextResponse(_DISABLED, status_code=404)
    if not _authorized(request, token):
        # A bookmark with ?token= is told why it does not open the page (the value is ignored).
        note = "Tokens in the address are not accepted; sign in here." if "token" in request.query_params else None
        return _login_form(request, note)
    try:
        snap = await snapshot(state.settings, state.pool, state.redis)
    except Exception as exc:
        log.warning("ops page failed: %s", type(exc).__name__)
        return PlainTextResponse("storage unavailable\n", status_code=503)
    return _TEMPLATES.TemplateResponse(request, "ops.html", _page_context(snap, datetime.now(UTC)),
                                       headers=_HEADERS)


async def _form_token(request: Request) -> str | None:
    """The `token` field of a small urlencoded form; anything larger or of another type is refused."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LOGIN_BODY_MAX:
            return None
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4).get("token")
    return values[0] if values else None


async def ops_login(request: Request) -> Response:
    """POST /ops/login: the form's token, compared in constant time, becomes a session cookie."""
    token = app_state(request).settings.ops_token
    if token is None:
        return PlainTextResponse(_DISABLED, status_code=404)
    try:
        given = await _form_token(request)
    except ValueError:  # more fields than a login form has
        given = None
    if not token_matches(given, token):
        log.warning("ops sign-in refused")
        return _login_form(request, "That token is not right.")
    expires = int(time.time()) + SESSION_S
    response = RedirectResponse("/ops", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(COOKIE, session_cookie(token, expires), max_age=SESSION_S, path="/ops", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")
    return response


async def ops_logout(request: Request) -> Response:
    response = RedirectResponse("/ops", status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
