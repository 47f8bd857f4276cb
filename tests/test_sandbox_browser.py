"""The sandbox in a real browser: headless Chromium (Debian's, never a downloaded one) driven by
Playwright walks the whole journey a newcomer would try by hand — /start, access granted by the
admin, login with a code and 2FA, import groups, a message with bold text, interval, start, tick,
the post in the groups panel, a flood wait that delays the next post, stop. Screenshots of each
step are saved under artifacts/sandbox/.

Drives only the page: every click and keystroke goes through the page's own endpoints into the
real webhook; the test itself only calls /tick and runs the worker, as the dev runner does.
"""

from __future__ import annotations

import base64
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devtools.chromium import HEADLESS_ARGS, find_chromium
from tests.sandbox_server import SANDBOX_ADMIN_ID, LiveSandbox, live_sandbox

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found: install Debian's `chromium` (apt-get install "
                                                "chromium) or set CHROMIUM_PATH to run the sandbox browser test"),
]
CHROMIUM_ARGS = HEADLESS_ARGS
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "sandbox"
UID = 700_555_001
PHONE = "+998901234567"
PASSWORD = "sandbox-2fa"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
MARKET = -1001000000001  # a seeded group without slow mode
FLOOD_S = 70  # longer than the 1-minute interval: the next cycle meets the pause
STEP_TIMEOUT_MS = 20_000


@pytest.fixture
def live(database_url: str, redis_url: str) -> Iterator[LiveSandbox]:
    with live_sandbox(database_url, redis_url) as server:
        yield server


@pytest.fixture
def page(live: LiveSandbox) -> Iterator[object]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1500, "height": 950})
        tab = context.new_page()
        tab.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield tab
        finally:
            tab.screenshot(path=str(ARTIFACTS / "zz-last.png"), full_page=True)
            browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _send(page, text: str) -> None:
    page.fill("#composer", text)
    page.press("#composer", "Enter")


def _menu(page) -> None:
    """/menu, and its answer awaited: a button pressed before it arrives may be an older menu's, and
    the /menu handled after that press would reset the conversation the press began."""
    before = _bot_messages(page)
    _send(page, "/menu")
    _wait_for_reply(page, before)


def _press(page, callback: str) -> None:
    button = page.locator(f'.msg.bot .inline-btn[data-callback="{callback}"]').last
    button.wait_for(state="visible")
    button.click()


def _wait_for_button(page, callback: str) -> None:
    page.locator(f'.msg.bot .inline-btn[data-callback="{callback}"]').last.wait_for(state="visible")


def _bot_messages(page) -> int:
    return page.locator(".msg.bot").count()


def _wait_for_reply(page, before: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.msg.bot').length > {before}", timeout=STEP_TIMEOUT_MS)


def _posts(live: LiveSandbox, chat_id: int) -> list[dict]:
    groups = httpx.get(f"{live.base_url}/sandbox/api/network", timeout=30).json()["groups"]
    return next(g for g in groups if g["chat_id"] == chat_id)["posts"]


def _run_until(live: LiveSandbox, done, deadline_s: float) -> None:
    """What the dev runner does, until `done()`: tick, then let the worker run what is due."""
    deadline = time.monotonic() + deadline_s
    while not done():
        assert time.monotonic() < deadline, "the broadcast did not get there in time"
        live.tick()
        live.run_worker()
        time.sleep(1)


def test_the_whole_journey_in_the_browser(live: LiveSandbox, page, database_url: str) -> None:
    page.goto(f"{live.base_url}/sandbox")
    page.fill("#user-id", str(UID))
    page.locator("#user-id").dispatch_event("change")
    page.fill("#user-name", "Browser Ali")
    page.locator("#user-name").dispatch_event("change")
    page.fill("#user-phone", PHONE)
    page.locator("#user-phone").dispatch_event("change")
    page.select_option("#user-lang", "en")
    page.wait_for_selector("#groups .group")  # the seeded groups are drawn

    # /start: an unknown user gets "how to get access"; every super admin gets the request.
    _send(page, "/start")
    page.wait_for_selector(".msg.bot")
    _shot(page, "01-start")

    # Access granted by the admin, with the request's own button.
    page.check("#as-admin")
    _press(page, f"admin_add_month:{UID}")
    page.wait_for_selector("#toasts .toast")  # the new expiry, as a toast
    _shot(page, "02-admin-granted")
    page.uncheck("#as-admin")
    _wait_for_button(page, "login")

    # Two-step verification on the emulated account, then login with the contact button and the code.
    page.fill("#tfa-phone", PHONE)
    page.fill("#tfa-password", PASSWORD)
    page.click("#tfa-set")
    page.wait_for_selector("#tfa-result:has-text('two-step')")
    _press(page, "login")
    contact = page.locator(".reply-btn[data-request-contact]")
    contact.wait_for(state="visible")
    contact.click()
    code = page.locator(f'.code[data-phone="{PHONE}"] .value')
    code.wait_for(state="visible")
    _shot(page, "03-code-arrived")
    before = _bot_messages(page)
    _send(page, " ".join(code.inner_text().strip()))
    _wait_for_reply(page, before)
    before = _bot_messages(page)
    _send(page, PASSWORD)
    _wait_for_reply(page, before)
    # The bot deleted the message holding the password; the page shows only that it was deleted.
    page.wait_for_selector(".msg.me.deleted")
    assert PASSWORD not in page.locator("#messages").inner_text()
    _shot(page, "04-logged-in")

    # Import the account's groups into the list.
    before = _bot_messages(page)
    _send(page, "/import_groups")
    _wait_for_reply(page, before)

    # The message, with bold text made by the toolbar.
    _menu(page)
    _press(page, "send_message")
    page.fill("#composer", "Big sale today")
    page.eval_on_selector("#composer", "el => el.setSelectionRange(9, 14)")
    page.click('#toolbar [data-wrap="b"]')
    assert page.input_value("#composer") == "Big sale <b>today</b>"
    page.press("#composer", "Enter")
    _press(page, "set_interval_custom")
    before = _bot_messages(page)
    _send(page, "1")  # the sandbox allows a 1-minute interval
    _wait_for_reply(page, before)
    _menu(page)
    _wait_for_button(page, "stop_broadcast")  # the broadcast is on
    _shot(page, "05-started")

    # Tick: the first cycle posts to the groups; the panel shows it with the bold text.
    _run_until(live, lambda: bool(_posts(live, MARKET)), 60)
    bold = page.locator(f"#group-{MARKET} .post-body b")
    bold.first.wait_for(state="visible")
    assert bold.first.inner_text() == "today"
    assert _posts(live, MARKET)[0]["cycle"]["seq"] == 1
    _shot(page, "06-first-post")

    # A flood wait on the account: the next cycle meets it, waits it out, and then posts.
    account = page.locator(".account").first
    account.locator(".flood-seconds").fill(str(FLOOD_S))
    flood_set_at = time.time()
    account.locator(".flood").click()
    page.wait_for_selector(".account .flood-left")
    _shot(page, "07-flood-injected")
    _run_until(live, lambda: len(_posts(live, MARKET)) >= 2, FLOOD_S + 120)
    first, second = _posts(live, MARKET)[:2]
    assert second["at"] >= flood_set_at + FLOOD_S - 1, "a post went out during the flood wait"
    # Cycle 1's deliveries were pruned when cycle 2 began; the panel still knows which cycle posted what.
    assert (first["cycle"]["seq"], second["cycle"]["seq"]) == (1, 2)
    page.locator(f"#group-{MARKET} .post").nth(1).wait_for(state="visible")
    _shot(page, "08-post-after-flood")

    # Stop.
    _menu(page)
    _press(page, "stop_broadcast")
    _wait_for_button(page, "start_broadcast")
    _shot(page, "09-stopped")
    # An older message (the menu from before the start) carries the Start button too, so the wait above
    # may return before the press is handled: the stop is read until it lands, at most a step's time.
    deadline = time.time() + STEP_TIMEOUT_MS / 1000
    while True:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT active FROM configs WHERE owner_id = %(id)s", {"id": UID}).fetchone()
        if row == (False,) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert row == (False,)
    assert SANDBOX_ADMIN_ID != UID


def test_photo_upload_and_toolbar_formatting(live: LiveSandbox, page) -> None:
    """The composer's toolbar (with a link asked for in a prompt) and the attach button: the photo
    goes up with its caption's formatting, and the chat shows it as a picture."""
    page.goto(f"{live.base_url}/sandbox")
    page.fill("#user-id", str(UID + 1))
    page.locator("#user-id").dispatch_event("change")
    page.on("dialog", lambda dialog: dialog.accept("https://example.com/x"))
    page.fill("#composer", "see site now")
    page.eval_on_selector("#composer", "el => el.setSelectionRange(4, 8)")
    page.click('#toolbar [data-wrap="a"]')
    page.eval_on_selector("#composer", "el => el.setSelectionRange(el.value.length - 3, el.value.length)")
    page.click('#toolbar [data-wrap="tg-spoiler"]')
    assert page.input_value("#composer") == 'see <a href="https://example.com/x">site</a> <tg-spoiler>now</tg-spoiler>'
    page.set_input_files("#attach", files=[{"name": "dot.png", "mimeType": "image/png", "buffer": PNG}])
    picture = page.locator(".msg.me img").first
    picture.wait_for(state="visible")
    page.wait_for_function("document.querySelector('.msg.me img').naturalWidth > 0")
    link = page.locator('.msg.me a[href="https://example.com/x"]')
    assert link.inner_text() == "site"
    assert page.locator(".msg.me .tg-spoiler").inner_text() == "now"
    _shot(page, "10-photo-with-caption")


VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour PNG big enough to be seen in the screenshots."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_a_newcomer_on_a_desktop_and_on_a_phone(live: LiveSandbox) -> None:
    """What a new user meets on the page, at 1280 px and at 390 px: the empty chat says to type
    /start; malformed formatting keeps the typed text and says what is wrong; the groups panel is
    reachable without sideways scrolling, and a photo the broadcast posted shows as a picture; the
    page asks for nothing that is not there (no 404, favicon included)."""
    from tests.sandbox_server import broadcast_a_photo

    owner: dict[str, object] = {"id": UID + 5, "first_name": "Photo seller", "language_code": "en"}
    broadcast_a_photo(live, owner, "+998905556677", _png(240, 120, (42, 119, 182)), "<b>Photo</b> sale", MARKET)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for n, (name, (width, height)) in enumerate(VIEWPORTS.items()):
                context = browser.new_context(viewport={"width": width, "height": height})
                tab = context.new_page()
                tab.set_default_timeout(STEP_TIMEOUT_MS)
                missing: list[str] = []
                tab.on("response", lambda r, missing=missing: missing.append(r.url) if r.status == 404 else None)
                _newcomer_walk(live, tab, name, width, newcomer=UID + 10 + n, owner=UID + 5)
                assert missing == [], missing
                context.close()
        finally:
            browser.close()


def _no_sideways_scroll(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _newcomer_walk(live: LiveSandbox, page, name: str, width: int, *, newcomer: int, owner: int) -> None:
    page.goto(f"{live.base_url}/sandbox")
    page.fill("#user-id", str(newcomer))
    page.locator("#user-id").dispatch_event("change")
    page.select_option("#user-lang", "en")

    # An empty chat says what to do.
    hint = page.locator("#messages .empty-hint")
    hint.wait_for(state="visible")
    assert "/start" in hint.inner_text()
    _no_sideways_scroll(page, width)
    _shot(page, f"{name}-01-empty-chat")

    # Malformed formatting: nothing is sent, the text stays, the page says what is wrong.
    typed = "Big <b>sale today"
    _send(page, typed)
    error = page.locator("#compose-error")
    error.wait_for(state="visible")
    assert '"b"' in error.inner_text() and "kept" in error.inner_text()
    assert page.input_value("#composer") == typed
    assert page.locator("#messages .msg").count() == 0
    _shot(page, f"{name}-02-malformed-html")

    # Fixed and sent: the hint goes, the bot answers, the error is gone.
    page.fill("#composer", "Big <b>sale</b> today")
    page.press("#composer", "Enter")
    page.locator(".msg.bot").first.wait_for(state="visible")
    assert page.locator("#messages .empty-hint").count() == 0 and page.locator("#compose-error").is_hidden()
    assert page.input_value("#composer") == ""

    # The groups panel is reachable (by the header's link on a narrow page) and fits the width;
    # the photo the broadcast posted is a picture that loaded.
    if page.locator("#jump").is_visible():
        page.click('#jump a[href="#network"]')
    group = page.locator(f"#group-{MARKET}")
    group.scroll_into_view_if_needed()
    box = group.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    picture = page.locator(f"#group-{MARKET} .post-media img").first
    picture.scroll_into_view_if_needed()
    picture.wait_for(state="visible")
    page.wait_for_function(f"document.querySelector('#group-{MARKET} .post-media img').naturalWidth === 240")
    assert page.locator(f"#group-{MARKET} .post-body b").first.inner_text() == "Photo"
    _no_sideways_scroll(page, width)
    _shot(page, f"{name}-03-groups-with-photo")

    # The owner's chat shows the menu with when the next round goes out.
    page.fill("#user-id", str(owner))
    page.locator("#user-id").dispatch_event("change")
    page.locator("#messages .msg.bot").first.wait_for(state="visible")
    if page.locator("#jump").is_visible():
        page.click('#jump a[href="#chat"]')
    _shot(page, f"{name}-04-owner-chat")
