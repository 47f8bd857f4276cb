"""GET /ops: one server-rendered page an operator reads at a glance (no scripts, no build step).

Protected by its own OPS_TOKEN (unset: the page is off, 404), sent as `Authorization: Bearer` or
typed once into the login form, which sets a signed, expiring, HttpOnly, SameSite=Strict cookie
(Secure over https). Never in the URL: proxies and browser history keep URLs. And never the tick
token: a page link must not be able to drive `/tick`. The page is for operators, not bot users, so
its words are plain English here rather than catalog keys.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs

from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from api.auth import bearer, token_matches
from api.state import app_state
from core.chart import Column, svg_bar_chart
from db.ops import HourCount
from db.payments import PlanTotals
from services.gauges import OpsSnapshot, snapshot

log = logging.getLogger(__name__)

_STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#f6f7f9}
h1{font-size:22px;margin:0 0 16px}
h2{font-size:15px;margin:0 0 8px;color:#4a5363;text-transform:uppercase;letter-spacing:.04em}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:16px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px}
.wide{grid-column:1/-1}
.big{font-size:28px;font-weight:600}
.bad{color:#b42318}.ok{color:#067647}.muted{color:#6b7280}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
"""

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
    """`<expiry>.<HMAC of it under OPS_TOKEN>`: the token itself never sits in the browser, changing
    OPS_TOKEN signs every browser out, and a copied cookie stops working when it expires."""
    mac = hmac.new(token.get_secret_value().encode(), f"ops-session:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def _cookie_valid(value: str | None, token: SecretStr, now: float) -> bool:
    expires, _, _ = (value or "").partition(".")
    if not (expires.isdigit() and len(expires) <= 12) or int(expires) < now:
        return False
    return hmac.compare_digest(str(value).encode(), session_cookie(token, int(expires)).encode())


def _authorized(request: Request, token: SecretStr) -> bool:
    return token_matches(bearer(request), token) or _cookie_valid(request.cookies.get(COOKIE), token, time.time())


def render_login(note: str | None = None) -> str:
    message = f'<p class="bad" id="login-note">{html.escape(note)}</p>' if note else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex"><title>tgcast operations: sign in</title>'
        f"<style>{_STYLE}</style></head><body><h1>tgcast operations</h1>"
        f'<section class="card" style="max-width:420px">{message}'
        '<form method="post" action="/ops/login" id="login">'
        '<p><label>Operator token (OPS_TOKEN)<br>'
        '<input type="password" name="token" autocomplete="current-password" required autofocus '
        'style="width:100%;font:inherit;padding:4px"></label></p>'
        '<p><button type="submit">Sign in</button></p></form></section></body></html>'
    )


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


def _card(title: str, body: str, *, ident: str, wide: bool = False) -> str:
    cls = "card wide" if wide else "card"
    return f'<section class="{cls}" id="{ident}"><h2>{html.escape(title)}</h2>{body}</section>'


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    def cells(values: list[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="n">{v}</{tag}>' if i >= numeric_from else f"<{tag}>{v}</{tag}>"
            for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    return f"<table><thead><tr>{cells(head, 'th')}</tr></thead><tbody>{body}</tbody></table>"


_SENT, _FAILED = "#2e90fa", "#f04438"


def chart(per_hour: list[HourCount]) -> str:
    """Stacked bars (sent, failed) per hour (core/chart.py's SVG); labels every third hour."""
    columns = [Column((h.sent, h.failed), f"{h.hour:%H}:00 sent {h.sent}, failed {h.failed}",
                      f"{h.hour:%H}h" if i % 3 == 0 else None) for i, h in enumerate(per_hour)]
    svg = svg_bar_chart(columns, [("sent", _SENT), ("failed", _FAILED)], ident="per-hour-chart",
                        title="Deliveries per hour, last 24 hours")
    legend = (f'<p class="muted"><span style="color:{_SENT}">■</span> sent '
              f'<span style="color:{_FAILED}">■</span> failed (UTC hours, by cycle finish)</p>')
    return svg + legend


def payments_table(by_plan: list[PlanTotals]) -> str:
    if not by_plan:
        return '<p class="muted">none</p>'
    rows = [[html.escape(t.plan), str(t.payments), str(t.stars), str(t.refunds), str(t.refunded_stars),
             str(t.renewing)] for t in by_plan]
    total = [sum(getattr(t, f) for t in by_plan) for f in ("payments", "stars", "refunds", "refunded_stars",
                                                          "renewing")]
    rows.append(["<b>all plans</b>", *(f"<b>{n}</b>" for n in total)])
    return _table(["plan", "payments", "Stars received", "refunds", "Stars refunded", "renewing subscriptions"],
                  rows)


def render_page(snap: OpsSnapshot, now: datetime) -> str:
    tick_cls = "bad" if snap.last_tick_age_s is None or snap.last_tick_age_s > _TICK_STALE_S else "ok"
    p95_cls = "bad" if (snap.lag.p95_ms or 0) > _LAG_P95_BAD_MS else "ok"
    total_sent = sum(h.sent for h in snap.per_hour)
    total_failed = sum(h.failed for h in snap.per_hour)
    queues = _table(["queue", "waiting", "scheduled"],
                    [[html.escape(q.name), str(q.depth), str(q.scheduled)] for q in snap.queues])
    lag = (f'<div class="big {p95_cls}">p95 {_ms(snap.lag.p95_ms)}</div>'
           + _table(["percentile", "start lag"],
                    [["p50", _ms(snap.lag.p50_ms)], ["p95", _ms(snap.lag.p95_ms)], ["p99", _ms(snap.lag.p99_ms)]])
           + f'<p class="muted">{snap.lag.cycles} cycles started in 24 h</p>')
    tick = (f'<div class="big {tick_cls}" id="tick-age">{_duration(snap.last_tick_age_s)}</div>'
            '<p class="muted">since the last scheduler tick</p>')
    accounts = _table(["state", "accounts"], [[html.escape(k), str(v)] for k, v in snap.accounts.items()])
    accounts += f'<p class="muted">{snap.configs_active} broadcasts switched on</p>'
    paused_rows = [[str(p.owner_id), html.escape(p.pause_reason or "flood"), f"{p.flood_until:%d %b %H:%M}",
                    _duration((p.flood_until - now).total_seconds())] for p in snap.paused]
    paused = (_table(["owner", "reason", "until (UTC)", "left"], paused_rows, numeric_from=2) if paused_rows
              else '<p class="muted">none</p>')
    failures = (_table(["reason", "deliveries"], [[html.escape(r), str(n)] for r, n in snap.failures])
                if snap.failures else '<p class="muted">none in 24 h</p>')
    per_hour = (f'<p><span class="big">{total_sent}</span> sent, '
                f'<span class="big {"bad" if total_failed else ""}">{total_failed}</span> failed in 24 h</p>'
                + chart(snap.per_hour))
    cards = [
        _card("Last tick", tick, ident="tick"),
        _card("Queues", queues, ident="queues"),
        _card("Cycle start lag (24 h)", lag, ident="lag"),
        _card("Accounts", accounts, ident="accounts"),
        _card("Deliveries per hour (24 h)", per_hour, ident="per-hour", wide=True),
        _card("Accounts in flood pause", paused, ident="paused"),
        _card("Recent failures by reason (24 h)", failures, ident="failures"),
        _card("Stars payments by plan (all time)", payments_table(snap.payments), ident="payments", wide=True),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex"><title>tgcast operations</title>'
        f"<style>{_STYLE}</style></head><body>"
        '<form method="post" action="/ops/logout" id="logout" style="float:right">'
        '<button type="submit">Sign out</button></form>'
        f'<h1>tgcast operations <span class="muted" style="font-size:14px">{now:%Y-%m-%d %H:%M:%S} UTC</span></h1>'
        f'<div class="grid">{"".join(cards)}</div></body></html>'
    )


def _login_form(note: str | None = None) -> HTMLResponse:
    return HTMLResponse(render_login(note), status_code=401, headers={**_HEADERS, "WWW-Authenticate": "Bearer"})


async def ops_page(request: Request) -> Response:
    state = app_state(request)
    token = state.settings.ops_token
    if token is None:
        return PlainTextResponse(_DISABLED, status_code=404)
    if not _authorized(request, token):
        # A bookmark with ?token= is told why it does not open the page (the value is ignored).
        note = "Tokens in the address are not accepted; sign in here." if "token" in request.query_params else None
        return _login_form(note)
    try:
        snap = await snapshot(state.settings, state.pool, state.redis)
    except Exception as exc:
        log.warning("ops page failed: %s", type(exc).__name__)
        return PlainTextResponse("storage unavailable\n", status_code=503)
    return HTMLResponse(render_page(snap, datetime.now(UTC)), headers=_HEADERS)


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
        return _login_form("That token is not right.")
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
