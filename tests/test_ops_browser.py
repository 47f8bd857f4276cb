"""GET /ops: its own token (bearer header or the login form's cookie; never the URL, never the tick
token), the numbers it shows, and the page as a real browser signs in to it and renders it (Debian's
headless Chromium driven by Playwright against a real uvicorn server), with a screenshot kept under
artifacts/."""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from redis import Redis as SyncRedis
from rq import Queue

from api.app import create_app
from api.ops import COOKIE, session_cookie
from devtools.chromium import find_chromium
from sandbox.live_server import LiveServer
from tests.conftest import TICK_TOKEN

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
OPS_TOKEN = "ops-page-token-0123456789abcdef"
METRICS_TOKEN = "ops-metrics-token-0123456789"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars"]


def seed(database_url: str, redis_url: str) -> dict[str, int]:
    """A day of activity: finished cycles over the last hours, two paused accounts, queued jobs."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for uid in (1, 2, 3):
            conn.execute("INSERT INTO bot_users (user_id, first_name, status) VALUES (%s, 'U', 'active')", (uid,))
            conn.execute(
                "INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, flood_until, pause_reason) "
                "VALUES (%s, %s, '+998901234567', '\\x00', %s, %s)",
                (uid, uid + 100, {1: now + timedelta(minutes=20), 2: now + timedelta(hours=2)}.get(uid),
                 {1: "flood", 2: "peer_flood"}.get(uid)),
            )
        row = conn.execute("INSERT INTO messages (owner_id, kind, text, content_hash) "
                           "VALUES (3, 'text', 'hi', 'h') RETURNING id").fetchone()
        assert row is not None
        sent_total = failed_total = 0
        for seq, hours_ago in enumerate([0, 1, 1, 2, 5, 9, 23], start=1):
            sent, failed = 10 + seq, seq % 3
            sent_total, failed_total = sent_total + sent, failed_total + failed
            reasons = {"forbidden": failed} if failed else {}
            if seq == 7:
                reasons["unreachable"] = 0
            conn.execute(
                "INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, started_at, "
                "finished_at, status, total, sent, failed, reasons, lag_ms) VALUES (3, %s, %s, 10, "
                "now() - %s::interval, now() - %s::interval, now() - %s::interval, now() - %s::interval, 'done', "
                "%s, %s, %s, %s, %s)",
                (seq, row[0], f"{hours_ago} hours", f"{hours_ago} hours", f"{hours_ago} hours",
                 f"{hours_ago} hours", sent + failed, sent, failed, json.dumps(reasons), 400 * seq),
            )
    with SyncRedis.from_url(redis_url) as r:
        q = Queue("tgcast-broadcast", connection=r)
        for n in range(3):
            q.enqueue("jobs.send_batch.send_batch", n, 0)
        q.enqueue_at(now + timedelta(hours=1), "jobs.send_batch.send_batch", 9, 0)
        r.set("tgcast:last_tick", time.time() - 12)
    return {"sent": sent_total, "failed": failed_total}


# ---- over HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def settings_overrides() -> dict:
    return {"ops_token": OPS_TOKEN, "metrics_token": METRICS_TOKEN}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _sign_in(client, token: str = OPS_TOKEN):
    return await client.post("/ops/login", data={"token": token})


async def test_only_the_ops_token_by_bearer_opens_the_page(client) -> None:
    refused = [await client.get("/ops"), await client.get("/ops", headers=_bearer("wrong")),
               await client.get("/ops", headers=_bearer(TICK_TOKEN)),  # no fallback to the tick token
               await client.get("/ops", headers=_bearer(METRICS_TOKEN)),
               await client.get(f"/ops?token={OPS_TOKEN}")]  # never from the URL
    assert [r.status_code for r in refused] == [401] * 5
    assert all('<form method="post" action="/ops/login" id="login">' in r.text for r in refused)
    assert all(r.headers["cache-control"] == "no-store" for r in refused)
    assert 'id="login-note"' in refused[-1].text and 'id="login-note"' not in refused[0].text
    page = await client.get("/ops", headers=_bearer(OPS_TOKEN))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store" and 'id="per-hour"' in page.text
    # ...and the page's token cannot drive the scheduler.
    assert (await client.post("/tick", headers=_bearer(OPS_TOKEN))).status_code == 401


async def test_the_page_shows_payments_by_plan(client, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO bot_users (user_id, first_name, status) VALUES (5, 'P', 'active')")
        conn.execute(
            "INSERT INTO payments (user_id, telegram_payment_charge_id, plan, days, stars, currency, refunded_at)"
            " VALUES (5, 'ops-1', 'week', 7, 250, 'XTR', NULL), (5, 'ops-2', 'week', 7, 250, 'XTR', now()),"
            " (5, 'ops-3', 'month', 30, 750, 'XTR', NULL)")
        conn.execute("INSERT INTO star_subscriptions (user_id, plan, charge_id, last_charge_id, renews_at)"
                     " VALUES (5, 'month', 'ops-3', 'ops-3', now() + interval '20 days')")
    page = (await client.get("/ops", headers=_bearer(OPS_TOKEN))).text
    card = page[page.index('id="payments"'):]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", card)
    assert cells[:12] == ["month", "1", "750", "0", "0", "1", "week", "2", "500", "1", "250", "0"]
    assert cells[12:18] == ["<b>all plans</b>", "<b>3</b>", "<b>1250</b>", "<b>1</b>", "<b>250</b>", "<b>1</b>"]


async def test_login_form_sets_a_strict_httponly_cookie(client) -> None:
    wrong = await _sign_in(client, "not-the-ops-token-at-all")
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and 'id="login-note"' in wrong.text
    assert not client.cookies

    signed_in = await _sign_in(client)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/ops"
    cookie = signed_in.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes and "secure" not in attributes  # plain http
    assert "samesite=strict" in cookie.lower() and "path=/ops" in cookie.lower()
    value = client.cookies[COOKIE]
    assert OPS_TOKEN not in value and TICK_TOKEN not in value
    assert (await client.get("/ops")).status_code == 200  # the cookie alone opens it

    signed_out = await client.post("/ops/logout")
    assert signed_out.status_code == 303 and COOKIE not in client.cookies
    assert (await client.get("/ops")).status_code == 401


async def test_cookie_is_secure_over_https(app) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://tgcast.test") as c:
        signed_in = await _sign_in(c)
        assert signed_in.status_code == 303
        assert "secure" in {p.strip().lower() for p in signed_in.headers["set-cookie"].split(";")}
        assert (await c.get("/ops")).status_code == 200


@pytest.mark.parametrize("cookie", [
    "", "garbage", "9999999999.", f"9999999999.{'0' * 64}", "1" * 40 + ".x",
    session_cookie(SecretStr(OPS_TOKEN), int(time.time()) - 1),  # expired
    session_cookie(SecretStr(TICK_TOKEN), int(time.time()) + 3600),  # signed with another token
], ids=["empty", "garbage", "no_signature", "zero_signature", "bad_time", "expired", "other_token"])
# Named: ids made of the cookies would carry the clock, and test processes (pytest-xdist) started a
# second apart would disagree on the collected tests.
async def test_forged_or_expired_cookies_are_refused(client, cookie: str) -> None:
    client.cookies.set(COOKIE, cookie)
    assert (await client.get("/ops")).status_code == 401
    client.cookies.set(COOKIE, session_cookie(SecretStr(OPS_TOKEN), int(time.time()) + 60))
    assert (await client.get("/ops")).status_code == 200


async def test_login_takes_only_a_small_urlencoded_form(client) -> None:
    as_json = await client.post("/ops/login", json={"token": OPS_TOKEN})
    huge = await client.post("/ops/login", data={"token": OPS_TOKEN, "pad": "x" * 5000})
    many = await client.post("/ops/login", data={f"f{n}": "x" for n in range(10)} | {"token": OPS_TOKEN})
    assert [r.status_code for r in (as_json, huge, many)] == [401, 401, 401]
    assert not client.cookies


class TestWithoutOpsToken:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"metrics_token": METRICS_TOKEN}

    async def test_page_is_off(self, client) -> None:
        for token in (TICK_TOKEN, METRICS_TOKEN, OPS_TOKEN):
            off = await client.get("/ops", headers=_bearer(token))
            assert off.status_code == 404 and "OPS_TOKEN" in off.text
        login = await _sign_in(client)
        assert login.status_code == 404 and "set-cookie" not in login.headers


async def test_page_shows_the_numbers(client, settings) -> None:
    totals = seed(settings.database_url, settings.redis_url)
    page = (await client.get("/ops", headers=_bearer(OPS_TOKEN))).text
    bars = re.findall(r'<g class="bar" data-sent="(\d+)" data-failed="(\d+)"', page)
    assert len(bars) == 24
    assert sum(int(s) for s, _ in bars) == totals["sent"] and sum(int(f) for _, f in bars) == totals["failed"]
    assert int(bars[-1][0]) == 11  # the cycle finished this hour is the last bar
    assert re.search(r"<td>tgcast-broadcast</td><td class=\"n\">3</td><td class=\"n\">1</td>", page)
    assert "<td>forbidden</td>" in page and "<td>unreachable</td>" in page
    paused = page.split('id="paused"')[1].split("</section>")[0]
    assert paused.index("<td>1</td>") < paused.index("<td>2</td>")  # soonest back first
    assert "peer_flood" in paused and "<td>3</td>" not in paused
    assert re.search(r'class="big ok" id="tick-age">\d+ s<', page)
    assert "7 cycles started in 24 h" in page
    assert "<script" not in page


async def test_empty_page_renders(client) -> None:
    page = (await client.get("/ops", headers=_bearer(OPS_TOKEN))).text
    assert 'id="tick-age">never<' in page and "none in 24 h" in page
    assert len(re.findall(r'<g class="bar"', page)) == 24


# ---- in a real browser ---------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium found: install Debian's `chromium` (devtools/ensure_chromium.sh) "
                    "or set CHROMIUM_PATH")
    return path


@pytest.fixture
def live(settings, botapi) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.mark.slow
def test_ops_page_in_headless_chromium(chromium: str, live: LiveServer, settings) -> None:
    """Signs in through the form as an operator would, reads the page, keeps a screenshot."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
    totals = seed(settings.database_url, settings.redis_url)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ops.png"
    shot.unlink(missing_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1600})
            page = context.new_page()
            page.set_default_timeout(20_000)
            first = page.goto(f"{live.url}/ops")
            assert first is not None and first.status == 401
            page.fill('#login input[name="token"]', OPS_TOKEN)
            with page.expect_navigation():
                page.click('#login button[type="submit"]')
            assert page.url == f"{live.url}/ops" and page.title() == "tgcast operations"
            [cookie] = [c for c in context.cookies() if c["name"] == COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and OPS_TOKEN not in cookie["value"]
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script can read it

            html = page.content()
            for section in ("tick", "queues", "lag", "accounts", "per-hour", "paused", "failures"):
                assert f'id="{section}"' in html
            assert f"{totals['sent']}</span> sent" in html
            assert len(re.findall(r'<g class="bar"', html)) == 24 and "<svg" in html
            page.screenshot(path=str(shot))

            with page.expect_navigation():
                page.click('#logout button[type="submit"]')
            assert page.locator("#login").count() == 1 and not context.cookies()
        finally:
            browser.close()
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600)
    assert len(data) > 20_000  # a rendered page, not a blank one
