"""Buying access with Stars on the sandbox page in a real browser (headless Debian Chromium driven by
Playwright): the plans on /start, an invoice paid with its Pay button, a subscription paid from its
link and renewed from the page. Screenshots under artifacts/sandbox/payments-*.png."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from devtools.chromium import HEADLESS_ARGS, find_chromium
from tests.payments_helpers import PLANS
from tests.sandbox_server import LiveSandbox, live_sandbox

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found: install Debian's `chromium` (apt-get install "
                                                "chromium) or set CHROMIUM_PATH to run the sandbox browser test"),
]
CHROMIUM_ARGS = HEADLESS_ARGS
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "sandbox"
UID = 700_555_077
STEP_TIMEOUT_MS = 20_000


@pytest.fixture
def live(database_url: str, redis_url: str) -> Iterator[LiveSandbox]:
    with live_sandbox(database_url, redis_url, plans=PLANS) as server:
        yield server


@pytest.fixture
def page(live: LiveSandbox) -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        tab = browser.new_context(viewport={"width": 1500, "height": 950}).new_page()
        tab.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield tab
        finally:
            tab.screenshot(path=str(ARTIFACTS / "payments-zz-last.png"), full_page=True)
            browser.close()


def _payments(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM payments WHERE user_id = %(u)s", {"u": UID}).fetchone()
    return int(row[0]) if row else 0


def _expiry(database_url: str) -> datetime | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT expires_at FROM bot_users WHERE user_id = %(u)s", {"u": UID}).fetchone()
    return row[0] if row else None


def test_buy_subscribe_and_renew_in_the_browser(live: LiveSandbox, page, database_url: str) -> None:
    page.goto(f"{live.base_url}/sandbox")
    page.fill("#user-id", str(UID))
    page.locator("#user-id").dispatch_event("change")
    page.select_option("#user-lang", "en")
    page.fill("#composer", "/start")
    page.press("#composer", "Enter")

    page.locator('.msg.bot .inline-btn[data-callback="pay_buy:week"]').last.click()
    pay = page.locator(".msg.bot .invoice .inline-btn.pay").last
    pay.wait_for(state="visible")
    page.screenshot(path=str(ARTIFACTS / "payments-01-invoice.png"), full_page=True)
    pay.click()
    page.locator(".invoice-paid").last.wait_for(state="visible")
    page.locator(".msg.me .payment").last.wait_for(state="visible")
    assert _payments(database_url) == 1
    expiry = _expiry(database_url)
    assert expiry is not None and abs(expiry - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    page.screenshot(path=str(ARTIFACTS / "payments-02-paid.png"), full_page=True)

    page.locator('.msg.bot .inline-btn[data-callback="pay_buy:month"]').first.click()
    link = page.locator(".msg.bot .inline-row .inline-btn.pay").last
    link.wait_for(state="visible")
    link.click()
    page.wait_for_function("document.querySelectorAll('.msg.me .payment').length >= 2")
    assert _payments(database_url) == 2
    renew = page.locator(".msg.me .payment .inline-btn").last
    renew.wait_for(state="visible")
    renew.click()
    page.wait_for_function("document.querySelectorAll('.msg.me .payment').length >= 3")
    assert _payments(database_url) == 3
    expiry = _expiry(database_url)
    assert expiry is not None and abs(expiry - (datetime.now(UTC) + timedelta(days=67))) < timedelta(minutes=1)
    page.screenshot(path=str(ARTIFACTS / "payments-03-renewed.png"), full_page=True)
