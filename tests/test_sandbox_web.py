"""The sandbox page's endpoints, against the whole app in sandbox mode (no bot token) on a live port:
updates go through the real webhook, the bot's replies land in the chat feed, faults change the
emulated network, and chats survive a restart of the web process."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from core.settings import SANDBOX_BOT_TOKEN
from sandbox.sandbox_botapi import SandboxBotAPI
from tests.harness import message_keys
from tests.sandbox_server import SANDBOX_ADMIN_ID, LiveSandbox, live_sandbox
from userbot.fake import FakeGateway, FakeTelegram

USER_ID = 700_123_456
USER = {"id": USER_ID, "first_name": "Sandy", "language_code": "en"}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


@pytest.fixture
def live(database_url: str, redis_url: str) -> Iterator[LiveSandbox]:
    with live_sandbox(database_url, redis_url) as server:
        yield server


@pytest.fixture
async def fake_net(redis_url: str) -> AsyncIterator[FakeTelegram]:
    redis = Redis.from_url(redis_url)
    yield FakeTelegram(redis, prefix="tgcast:fake:")
    await redis.aclose()


def _chat(live: LiveSandbox, chat_id: int = USER_ID) -> dict:
    with live.client() as c:
        return c.get(f"/sandbox/api/chat/{chat_id}").json()


def _bot_keys(view: dict) -> set[str]:
    keys: set[str] = set()
    for m in view["messages"]:
        if m["from_bot"] and not m["deleted"]:
            keys |= message_keys(m["html"])  # catalogs hold HTML; the rendered message matches them
    return keys


def test_page_and_its_static_files(live: LiveSandbox) -> None:
    with live.client() as c:
        page = c.get("/sandbox")
        assert page.status_code == 200 and "/sandbox/static/page.js" in page.text
        assert c.get("/sandbox/static/page.js").status_code == 200
        assert c.get("/sandbox/static/page.css").headers["content-type"].startswith("text/css")
        assert c.get("/sandbox/static/..%2Fweb.py").status_code == 404
        config = c.get("/sandbox/api/config").json()
    assert config["admin_id"] == SANDBOX_ADMIN_ID and config["webhook_ready"] is True


def test_text_goes_through_the_webhook_and_the_reply_shows_in_the_chat(live: LiveSandbox) -> None:
    with live.client() as c:
        answer = c.post("/sandbox/api/send", json={"user": USER, "text": "/id"}).json()
    assert answer["ok"] and answer["webhook_status"] == 200
    view = _chat(live)
    mine, *replies = view["messages"]
    assert not mine["from_bot"] and mine["text"] == "/id"
    assert mine["entities"] == [{"type": "bot_command", "offset": 0, "length": 3}]
    assert "menu.your_id" in _bot_keys(view)
    # The bot's parse_mode=HTML became text + entities, as Telegram stores it: no tags left.
    reply = next(m for m in replies if "menu.your_id" in message_keys(m["html"]))
    assert "<code>" not in reply["text"] and reply["entities"][0]["type"] == "code"
    assert str(USER["id"]) in reply["html"]


def test_formatted_text_reaches_the_bot_with_utf16_entities(live: LiveSandbox) -> None:
    markup = '😀 <b>bold</b> <i>it</i> <a href="https://example.com">link</a>'
    with live.client() as c:
        assert c.post("/sandbox/api/send", json={"user": USER, "text": markup}).json()["ok"]
    mine = _chat(live)["messages"][0]
    assert mine["text"] == "😀 bold it link"
    assert mine["entities"] == [
        {"type": "bold", "offset": 3, "length": 4},
        {"type": "italic", "offset": 8, "length": 2},
        {"type": "text_link", "url": "https://example.com", "offset": 11, "length": 4},
    ]


@pytest.mark.parametrize("body", [
    {"user": USER, "text": "<b>unclosed"},
    {"user": USER, "text": "   "},
    {"user": {"id": -5, "first_name": "x"}, "text": "hi"},
    {"user": {"id": "abc"}, "text": "hi"},
    {"text": "hi"},
])
def test_bad_input_is_refused_and_nothing_is_sent(live: LiveSandbox, body: dict) -> None:
    with live.client() as c:
        response = c.post("/sandbox/api/send", json=body)
    assert response.status_code == 400 and response.json()["error"]
    assert _chat(live)["messages"] == []


def test_without_a_webhook_secret_the_sandbox_says_so(database_url: str, redis_url: str) -> None:
    with live_sandbox(database_url, redis_url, webhook_secret=None) as server, server.client() as c:
        response = c.post("/sandbox/api/send", json={"user": USER, "text": "/id"})
    assert response.status_code == 503 and "WEBHOOK_SECRET" in response.json()["error"]


def test_inline_button_press_is_a_callback_update(live: LiveSandbox) -> None:
    with live.client() as c:
        c.post("/sandbox/api/send", json={"user": USER, "text": "/lang"})
        picker = next(m for m in _chat(live)["messages"] if m["from_bot"] and m["inline"])
        data = [b["callback_data"] for row in picker["inline"] for b in row]
        assert "lang:ru" in data
        forged = c.post("/sandbox/api/press", json={"user": USER, "message_id": picker["id"], "data": "admin_stats"})
        assert forged.status_code == 400  # a client can only press what is on the message
        pressed = c.post("/sandbox/api/press", json={"user": USER, "message_id": picker["id"], "data": "lang:ru"})
    assert pressed.json()["ok"] and pressed.json()["webhook_status"] == 200


def test_contact_and_photo_updates(live: LiveSandbox) -> None:
    with live.client() as c:
        contact = c.post("/sandbox/api/contact", json={"user": USER, "phone": "+998 90 123 45 67"}).json()
        photo = c.post("/sandbox/api/media", json={
            "user": USER, "kind": "photo", "file_name": "a.png", "data": base64.b64encode(PNG).decode(),
            "caption": "<b>caption</b>",
        }).json()
        assert contact["ok"] and photo["ok"]
        shared, picture = [m for m in _chat(live)["messages"] if not m["from_bot"]]
        assert shared["contact"] == "+998901234567"
        assert picture["media"]["kind"] == "photo"
        assert picture["entities"] == [{"type": "bold", "offset": 0, "length": 7}]
        image = c.get(picture["media"]["url"])
        assert image.content == PNG and image.headers["content-type"] == "image/png"
        bad = c.post("/sandbox/api/media", json={"user": USER, "kind": "sticker", "data": "AAAA"})
    assert bad.status_code == 400


def test_a_deleted_message_shows_as_deleted_without_its_content(live: LiveSandbox) -> None:
    with live.client() as c:
        c.post("/sandbox/api/send", json={"user": USER, "text": "secret 1 2 3 4 5"})
        mine = _chat(live)["messages"][0]
        # What the bot does with a message holding a login code or a password.
        deleted = c.post(f"/sandbox/botapi/bot{SANDBOX_BOT_TOKEN}/deleteMessage",
                         json={"chat_id": USER["id"], "message_id": mine["id"]})
        assert deleted.json()["ok"]
    gone = next(m for m in _chat(live)["messages"] if m["id"] == mine["id"])
    assert gone["deleted"] and "text" not in gone and "html" not in gone


async def test_fault_controls_change_the_emulated_network(live: LiveSandbox, fake_net: FakeTelegram) -> None:
    uid, chat = 7_001_234_567, -1001000000001
    with live.client() as c:
        for body in ({"action": "flood", "tg_user_id": uid, "seconds": 60},
                     {"action": "slowmode", "chat_id": chat, "seconds": 90},
                     {"action": "kill", "tg_user_id": uid},
                     {"action": "forbid", "tg_user_id": uid, "chat_id": chat},
                     {"action": "revoke", "tg_user_id": uid}):
            assert c.post("/sandbox/api/fault", json=body).json() == {"ok": True}, body
        assert c.post("/sandbox/api/fault", json={"action": "flood"}).status_code == 400
        assert c.post("/sandbox/api/fault", json={"action": "nuke", "tg_user_id": uid}).status_code == 400
    assert 55 < await fake_net.flood_left(uid) <= 60
    assert next(g for g in await fake_net.seeded_groups() if g.chat_id == chat).slowmode_s == 90
    assert await fake_net.pending_faults(uid) == ["NETWORK"]
    assert not await fake_net.writable(chat, uid)
    assert await fake_net.redis.sismember("tgcast:fake:revoked", str(uid))  # type: ignore[misc]


async def test_two_step_account_and_login_codes_panel(live: LiveSandbox, fake_net: FakeTelegram) -> None:
    with live.client() as c:
        made = c.post("/sandbox/api/account", json={"phone": "+998 90 111 22 33", "password": "hunter2"}).json()
        assert made["ok"] and made["two_step"] and made["phone"] == "+998901112233"
        assert c.post("/sandbox/api/account", json={"phone": "12"}).status_code == 400
        gateway = FakeGateway(fake_net)
        assert c.post("/sandbox/api/send", json={"user": USER, "text": "+998901112233"}).json()["ok"]
        sent = await gateway.send_code("+998901112233")
        codes = c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"]
        assert codes == [{"phone": "+998901112233", "code": await fake_net.last_code("+998901112233")}]
        code = codes[0]["code"]
    # The password set on the page is the one the emulated account asks for.
    needed = await gateway.sign_in(sent.temp_session, "+998901112233", code, sent.phone_code_hash)
    assert type(needed).__name__ == "PasswordNeeded"
    signed = await gateway.check_password(sent.temp_session, "+998901112233", "hunter2")
    assert signed.tg_user_id == made["tg_user_id"]


def test_network_lists_the_seeded_groups(live: LiveSandbox) -> None:
    with live.client() as c:
        groups = c.get("/sandbox/api/network").json()["groups"]
    by_id = {g["chat_id"]: g for g in groups}
    assert len(by_id) == 5
    assert by_id[-1001000000002]["slowmode_s"] == 60 and by_id[-1001000000005]["read_only"]
    assert all(g["posts"] == [] for g in groups)


def _bot_photo(c) -> str:
    """The bot sends a photo by URL, as it may; returns the file id the emulator gave it."""
    sent = c.post(f"/sandbox/botapi/bot{SANDBOX_BOT_TOKEN}/sendPhoto",
                  json={"chat_id": USER_ID, "photo": "https://example.com/p.jpg"}).json()
    return str(sent["result"]["photo"][-1]["file_id"])


def test_chats_survive_a_restart_of_the_web_process(database_url: str, redis_url: str) -> None:
    with live_sandbox(database_url, redis_url) as first, first.client() as c:
        old_file = _bot_photo(c)
        c.post("/sandbox/api/send", json={"user": USER, "text": "/id"})
        c.post("/sandbox/api/media", json={"user": USER, "kind": "photo", "file_name": "a.png",
                                           "data": base64.b64encode(PNG).decode()})
        before = _chat(first)
    assert len(before["messages"]) >= 3
    with live_sandbox(database_url, redis_url) as second, second.client() as c:
        after = _chat(second)
        assert after["messages"] == before["messages"]
        photo = next(m for m in after["messages"] if m.get("media") and not m["from_bot"])
        assert c.get(photo["media"]["url"]).content == PNG
        # Files the bot sends after the restart get new ids: the old ones still mean the old files.
        assert _bot_photo(c) != old_file
        # New messages continue the chat's numbering instead of overwriting the old ones.
        c.post("/sandbox/api/send", json={"user": USER, "text": "again"})
        assert _chat(second)["messages"][-2]["id"] > before["messages"][-1]["id"] or \
            len(_chat(second)["messages"]) > len(before["messages"])


def test_toasts_are_kept_per_chat() -> None:
    api = SandboxBotAPI()
    api.expect_callback("cb1", 42)
    status, _ = api.handle(SANDBOX_BOT_TOKEN, "answerCallbackQuery", {"callback_query_id": "cb1", "text": "added"}, {})
    api.handle(SANDBOX_BOT_TOKEN, "answerCallbackQuery", {"callback_query_id": "unknown", "text": "x"}, {})
    assert status == 200
    assert [t["text"] for t in api.toasts(42)] == ["added"]


def test_bot_html_that_telegram_would_refuse_is_refused() -> None:
    api = SandboxBotAPI()
    status, body = api.handle(SANDBOX_BOT_TOKEN, "sendMessage",
                              {"chat_id": 1, "text": "<b>broken", "parse_mode": "HTML"}, {})
    assert status == 400 and "can't parse entities" in body["description"]
    ok = {"chat_id": 1, "text": "<b>ok</b>", "parse_mode": "HTML"}
    status, body = api.handle(SANDBOX_BOT_TOKEN, "sendMessage", ok, {})
    assert status == 200 and body["result"]["text"] == "ok"
    assert body["result"]["entities"] == [{"type": "bold", "offset": 0, "length": 2}]


def test_the_reply_keyboard_in_force_is_the_latest_until_removed() -> None:
    from sandbox.views import reply_keyboard

    share = {"keyboard": [[{"text": "Share", "request_contact": True}]], "one_time_keyboard": True}
    shown = reply_keyboard([{"message_id": 1, "reply_markup": share}, {"message_id": 2, "text": "x"}])
    assert shown == {"rows": [[{"text": "Share", "request_contact": True}]], "one_time": True, "placeholder": "",
                     "message_id": 1}
    assert reply_keyboard([{"message_id": 1, "reply_markup": share},
                           {"message_id": 2, "reply_markup": {"remove_keyboard": True}}]) is None


def test_a_posted_photo_is_served_for_the_groups_panel(live: LiveSandbox) -> None:
    from tests.sandbox_server import broadcast_a_photo

    user = {"id": USER_ID, "first_name": "Sandy", "language_code": "en"}
    post = broadcast_a_photo(live, user, "+998901112233", PNG, "<b>Photo</b> sale", -1001000000001)
    assert post["kind"] == "photo" and post["media"]["kind"] == "photo"
    assert "<b>Photo</b> sale" in post["html"]
    with live.client() as c:
        image = c.get(post["media"]["url"])
        assert image.status_code == 200 and image.content == PNG and image.headers["content-type"] == "image/png"
        assert c.get("/sandbox/api/media/999999999").status_code == 404


async def test_login_codes_show_only_to_the_user_whose_phone_it_is(live: LiveSandbox, fake_net: FakeTelegram) -> None:
    other = {"id": USER_ID + 1, "first_name": "Other", "language_code": "en"}
    gateway = FakeGateway(fake_net)
    with live.client() as c:
        for who, phone in ((USER, "+998901112244"), (other, "+998901112255")):
            assert c.post("/sandbox/api/account", json={"phone": phone}).json()["ok"]
            assert c.post("/sandbox/api/contact", json={"user": who, "phone": phone}).json()["ok"]
            await gateway.send_code(phone)
        mine = c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"]
        theirs = c.get(f"/sandbox/api/network?user={other['id']}").json()["codes"]
        nobody = c.get("/sandbox/api/network").json()["codes"]
    assert [x["phone"] for x in mine] == ["+998901112244"]
    assert [x["phone"] for x in theirs] == ["+998901112255"]
    assert nobody == []


def test_a_code_sent_unspaced_expires_and_the_bot_says_so(live: LiveSandbox) -> None:
    from tests.sandbox_server import press, say

    admin = {"id": SANDBOX_ADMIN_ID, "first_name": "Admin", "language_code": "en"}
    phone = "+998901112266"
    with live.client() as c:
        say(c, USER, "/start")
        say(c, admin, f"/adduser {USER_ID} 30")
        assert c.post("/sandbox/api/account", json={"phone": phone}).json()["ok"]
        press(c, USER, "login")
        assert c.post("/sandbox/api/contact", json={"user": USER, "phone": phone}).json()["ok"]
        [code] = [x["code"] for x in c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"]]
        say(c, USER, code)  # as it is, unspaced: Telegram expires it before the bot can use it
        assert "login.code_expired" in _bot_keys(_chat(live))
        assert c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"] == []
        # The way back works: the phone again, a new code, typed with spaces.
        assert c.post("/sandbox/api/contact", json={"user": USER, "phone": phone}).json()["ok"]
        [code] = [x["code"] for x in c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"]]
        say(c, USER, " ".join(code))
        assert "login.success" in _bot_keys(_chat(live))


async def test_a_deleted_post_shows_as_deleted_in_the_groups_panel(live: LiveSandbox, fake_net: FakeTelegram) -> None:
    chat = -1001000000001  # a seeded group
    kept = await fake_net.post_as(chat, 7_001_234_568, "still here")
    gone = await fake_net.post_as(chat, 7_001_234_568, "replaced")
    await fake_net.redis.sadd(f"{fake_net.p}deleted:{chat}", gone)  # type: ignore[misc]
    with live.client() as c:
        groups = c.get("/sandbox/api/network").json()["groups"]
    posts = {p["message_id"]: p for p in next(g for g in groups if g["chat_id"] == chat)["posts"]}
    assert (posts[kept]["deleted"], posts[gone]["deleted"]) == (False, True)


def test_a_second_emulated_account_is_added_from_the_accounts_screen(live: LiveSandbox) -> None:
    """Any phone typed in the sandbox is an emulated account: a user adds a second one as they would a
    real one, and the network panel lists both under the user."""
    from tests.sandbox_server import press, say

    admin = {"id": SANDBOX_ADMIN_ID, "first_name": "Admin", "language_code": "en"}
    with live.client() as c:
        say(c, USER, "/start")
        say(c, admin, f"/adduser {USER_ID} 30")
        for n, phone in enumerate(("+998901113301", "+998901113302")):
            if n:
                press(c, USER, "accounts")  # the menu's Accounts, then Add
            press(c, USER, "login" if n == 0 else "account_add")
            assert c.post("/sandbox/api/contact", json={"user": USER, "phone": phone}).json()["ok"]
            code = next(x["code"] for x in c.get(f"/sandbox/api/network?user={USER_ID}").json()["codes"]
                        if x["phone"] == phone)
            say(c, USER, " ".join(code))
        assert "login.account_added" in _bot_keys(_chat(live))
        listed = [a for a in c.get("/sandbox/api/network").json()["accounts"] if a["owner_id"] == USER_ID]
        assert len(listed) == 2 and {a["status"] for a in listed} == {"active"}
