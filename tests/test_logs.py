"""Structured logs: JSON lines with the ids in context, secrets redacted wherever they appear, the
level and format from the settings (also through the real `tgcast` processes, in test_cli.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.crypto import SecretBox
from core.logs import JsonFormatter, RedactingFilter, bind, log_context, redact, setup_logging
from tests.conftest import BOT_TOKEN, SESSION_KEY, TICK_TOKEN

# The shape of a real Telethon StringSession: "1" + urlsafe base64 of dc, ip, port and auth key.
TELETHON_SESSION = "1" + "BVrY8w1Hq-Rz_" * 27 + "A="
SECRETS = [BOT_TOKEN, TICK_TOKEN, SESSION_KEY, "webhook-secret-abcdef"]


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root logger set up as `setup_logging` does, writing into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    setup_logging("DEBUG", "json", SECRETS)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_each_record_is_one_json_line_with_the_basics(stream: io.StringIO) -> None:
    log = logging.getLogger("tgcast.test")
    log.info("first %s", "line")
    log.warning("second\nwith a newline and «ünïcode»")
    docs = lines(stream)
    assert [d["msg"] for d in docs] == ["first line", "second\nwith a newline and «ünïcode»"]
    assert [d["level"] for d in docs] == ["INFO", "WARNING"]
    assert all(d["logger"] == "tgcast.test" and d["ts"].endswith("+00:00") for d in docs)


def test_context_ids_are_added_and_removed(stream: io.StringIO) -> None:
    log = logging.getLogger("tgcast.test")
    token = log_context.set({"update_id": 77, "user_id": 5})
    try:
        log.info("in an update")
        with bind(job_id="send-9-0", cycle_id=9):
            log.info("in a job")
        log.info("job over", extra={"cycle_id": 10})
    finally:
        log_context.reset(token)
    log.info("outside")
    inside, job, explicit, outside = lines(stream)
    assert (inside["update_id"], inside["user_id"]) == (77, 5) and "job_id" not in inside
    assert (job["update_id"], job["job_id"], job["cycle_id"]) == (77, "send-9-0", 9)
    assert explicit["cycle_id"] == 10  # extra= wins over the context
    assert not {"update_id", "user_id", "job_id", "cycle_id"} & outside.keys()


@pytest.mark.parametrize(
    "leak",
    [
        f"calling https://api.telegram.org/bot{BOT_TOKEN}/getMe",
        f"token in prose {BOT_TOKEN} here",
        "an unconfigured bot token 987654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ in a URL",
        f"Authorization: Bearer {TICK_TOKEN}",
        f"keys {SESSION_KEY}",
        f"session string {TELETHON_SESSION}",
        "a sandbox session fake-" + "ab" * 24,
        "login password=hunter2-secret and phone_code=12345",
        "DATABASE_URL postgresql://tgcast:db-pa55word@db.internal:5432/tgcast",
    ],
)
def test_secrets_in_messages_and_args_are_redacted(stream: io.StringIO, leak: str) -> None:
    logging.getLogger("tgcast.test").info("as message: " + leak.replace("%", "%%"))
    logging.getLogger("tgcast.test").info("as argument: %s", leak)
    text = " ".join(d["msg"] for d in lines(stream))  # not the timestamps: digits could match there
    for secret in (BOT_TOKEN, TICK_TOKEN, SESSION_KEY, TELETHON_SESSION, "fake-" + "ab" * 24, "hunter2-secret",
                   "12345", "db-pa55word", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"):
        assert secret not in text
    assert "***" in text
    assert len(lines(stream)) == 2


def test_session_string_in_an_exception_is_redacted(stream: io.StringIO) -> None:
    encrypted = SecretBox([SESSION_KEY]).encrypt(TELETHON_SESSION).decode()
    try:
        raise ValueError(f"could not load session {TELETHON_SESSION} (stored as {encrypted})")
    except ValueError:
        logging.getLogger("tgcast.test").exception("login failed for %s", TELETHON_SESSION)
    [doc] = lines(stream)
    assert "ValueError" in doc["exc"] and "Traceback" in doc["exc"]
    whole = json.dumps(doc)
    assert TELETHON_SESSION not in whole and encrypted not in whole
    assert doc["msg"] == "login failed for ***"


def test_plain_words_survive_redaction() -> None:
    text = "cycle 12: sent 3 of 5 to -1001234567890 in 850 ms (session revoked); exit code 2"
    assert redact(text, SECRETS) == text


def test_level_comes_from_the_setting(stream: io.StringIO) -> None:
    root = logging.getLogger()
    setup_logging("WARNING", "json", SECRETS)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    logging.getLogger("tgcast.test").info("hidden")
    logging.getLogger("tgcast.test").warning("shown")
    assert [d["msg"] for d in lines(buffer)] == ["shown"]
    assert root.level == logging.WARNING


def test_text_format_in_dev(stream: io.StringIO) -> None:
    root = logging.getLogger()
    setup_logging("INFO", "text", SECRETS)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    with bind(update_id=3):
        logging.getLogger("tgcast.test").info("hello %s", BOT_TOKEN)
    line = buffer.getvalue().strip()
    assert line.endswith("[update_id=3]") and "INFO tgcast.test: hello ***" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_filter_on_any_handler_redacts_the_record() -> None:
    """The filter works on a record before any formatter sees it, whichever formatter that is."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "t=%s", (TICK_TOKEN,), None)
    assert RedactingFilter(SECRETS).filter(record)
    assert record.getMessage() == "t=***"
    assert json.loads(JsonFormatter().format(record))["msg"] == "t=***"


async def test_webhook_records_carry_update_and_user_ids(app, tg, admin, stream: io.StringIO) -> None:
    """A failing handler's log line, as the webhook emits it, names the update and the user."""
    from aiogram import Router
    from aiogram.filters import Command
    from aiogram.types import Message

    router = Router(name="boom-logs")

    @router.message(Command("boom"))
    async def _boom(message: Message) -> None:
        raise RuntimeError(f"exploded holding {TELETHON_SESSION}")

    dispatcher = app.state.tgcast.dispatcher
    dispatcher.include_router(router)
    dispatcher.sub_routers.insert(0, dispatcher.sub_routers.pop())  # ahead of the catch-all fallback
    update = {"update_id": 6061, "message": {
        "message_id": 1, "date": 0, "text": "/boom", "chat": {"id": admin.id, "type": "private"},
        "from": admin.as_dict(), "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}
    assert (await tg.post_update(update)).status_code == 200
    [failure] = [d for d in lines(stream) if "handler failed on update 6061" in d["msg"]]
    assert (failure["update_id"], failure["user_id"], failure["level"]) == (6061, admin.id, "ERROR")
    assert "RuntimeError" in failure["exc"] and TELETHON_SESSION not in failure["exc"]
