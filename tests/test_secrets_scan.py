"""Secrets scan (docs/reliability.md, "Secrets"): the whole journey with every logger at DEBUG, then a scan of the
captured logs, a database dump and the Redis key space for the secrets in clear.

Journey: login with a code AND a two-step password, /import_groups, a message, a preset interval,
start, POST /tick, a worker batch (the send-batch job in-process), an admin announcement run by its
job. Secrets: the login code (unspaced and spaced), the 2FA password, the plain session string, the
bot token, the tick token, the webhook secret and the session encryption key.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from core.crypto import SecretBox
from core.logs import redact, setup_logging
from jobs.announce import run_announcement
from jobs.send_batch import run_batch
from tests.conftest import BOT_TOKEN, SESSION_KEY, TICK_TOKEN
from tests.harness import WEBHOOK_SECRET, Telegram, TgUser
from tests.journey_helpers import PHONE, allow, make_groups, spaced
from tests.runtime_helpers import job_context, run_job

PASSWORD = "Hunter2-пароль-2FA"  # distinctive: any hit is the password itself


class _Capture:
    """What the production logging set-up (`core.logs.setup_logging`, as `tgcast web`/`worker` call it)
    writes, with the root logger and every library logger forced to DEBUG."""

    def __init__(self, stream: io.StringIO, handler: logging.Handler) -> None:
        self.stream, self.handler = stream, handler
        self.records = 0

    @property
    def text(self) -> str:
        return self.stream.getvalue()


class _Counter(logging.Handler):
    def __init__(self, capture: _Capture) -> None:
        super().__init__(logging.DEBUG)
        self.capture = capture

    def emit(self, record: logging.LogRecord) -> None:
        self.capture.records += 1


@pytest.fixture
def debug_logs(settings) -> Iterator[_Capture]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    setup_logging("DEBUG", "json", settings.secret_values())
    [handler] = root.handlers
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    capture = _Capture(stream, handler)
    root.addHandler(_Counter(capture))
    # Every library at DEBUG (setup_logging quiets httpx and Telethon; the scan wants them loud).
    for names in ("aiogram", "httpx", "httpcore", "psycopg", "psycopg.pool", "rq", "redis", "telethon",
                  "uvicorn", "uvicorn.access", "uvicorn.error", "aiohttp"):
        logging.getLogger(names)
    for lg in [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]:
        lg.setLevel(logging.DEBUG)
        lg.propagate = True
    yield capture
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for lg in [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]:
        lg.setLevel(logging.NOTSET)
    for lg, level, propagate in saved:
        lg.setLevel(level)
        lg.propagate = propagate


def _needles(code: str, session: str) -> dict[str, re.Pattern[str]]:
    lit = {
        "2FA password": PASSWORD,
        "session string": session,
        "bot token": BOT_TOKEN,
        "bot token secret part": BOT_TOKEN.split(":", 1)[1],
        "tick token": TICK_TOKEN,
        "webhook secret": WEBHOOK_SECRET,
        "session key": SESSION_KEY,
        "login code (spaced)": spaced(code),
    }
    pats = {name: re.compile(re.escape(value)) for name, value in lit.items()}
    # A bare 5-digit number can be a port ("127.0.0.1:38455") or a duration: only a standalone one counts.
    pats["login code"] = re.compile(rf"(?<![\d:.\-]){code}(?![\d.])")
    pats["session string (hex in a dump)"] = re.compile(re.escape(session.encode().hex()), re.I)
    return pats


def _scan(where: str, text: str, needles: dict[str, re.Pattern[str]]) -> list[str]:
    found = []
    for name, pattern in needles.items():
        for m in pattern.finditer(text):
            found.append(f"{where}: {name} in …{text[max(0, m.start() - 80):m.end() + 40]!r}…")
    return found


async def _db_rows(db) -> str:
    cur = await db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
    )
    out: list[str] = []
    for (table,) in await cur.fetchall():
        rows = await db.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # names from the catalog
        out.extend(r[0] for r in await rows.fetchall())
    return "\n".join(out)


def _pg_dump(database_url: str) -> str | None:
    exe = shutil.which("pg_dump")
    if exe is None:
        return None
    done = subprocess.run([exe, "--data-only", "--dbname", database_url], capture_output=True, text=True,
                          check=False, timeout=120)
    return done.stdout if done.returncode == 0 else None


async def _redis_dump(redis, skip_prefix: str) -> str:
    """The app's own keys; the emulated Telegram network (under `skip_prefix`) is Telegram's side,
    which knows its sessions and codes as the real one does."""
    out = []
    async for key in redis.scan_iter(count=500):
        if key.decode(errors="replace").startswith(skip_prefix):
            continue
        kind = (await redis.type(key)).decode()
        if kind == "string":
            value: Any = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = kind
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


async def test_no_secret_in_logs_database_or_redis(
    tg: Telegram, db, redis, net, settings, user: TgUser, admin: TgUser, debug_logs: _Capture,
    database_url: str,
) -> None:
    # ---- the journey ------------------------------------------------------------------------------
    await allow(db, user)
    uid = await net.add_account(PHONE, password=PASSWORD)
    groups = make_groups(3)
    for g in groups:
        await net.add_group(g, members=[uid])
    await tg.press(user, "login")
    await tg.send(user, PHONE)
    code = await net.last_code(PHONE)
    assert code is not None
    await tg.send(user, spaced(code))
    await tg.send(user, PASSWORD)
    cur = await db.execute("SELECT session_enc FROM accounts WHERE owner_id = %(id)s AND status = 'active'",
                           {"id": user.id})
    row = await cur.fetchone()
    assert row is not None, "the login with code and password must store the account"
    session = SecretBox(settings.session_keys).decrypt(bytes(row[0]))
    assert len(session) >= 16

    await tg.send(user, "/import_groups")
    await tg.press(user, "send_message")
    await tg.send(user, "Buy <b>now</b>")
    await tg.press(user, "set_interval:3")  # activates the broadcast
    cur = await db.execute("SELECT active FROM configs WHERE owner_id = %(id)s", {"id": user.id})
    assert (await cur.fetchone()) == (True,)
    await db.execute("UPDATE configs SET next_run_at = now() - interval '1 second' WHERE owner_id = %(id)s",
                     {"id": user.id})
    response = await tg.client.post("/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"})
    assert response.status_code == 200 and response.json()["enqueued"] == 1
    cur = await db.execute("SELECT id FROM cycles WHERE owner_id = %(id)s", {"id": user.id})
    cycle = await cur.fetchone()
    assert cycle is not None
    cycle_id = cycle[0]
    async with job_context(settings) as ctx:
        result = await run_batch(ctx, cycle_id)
    assert result.sent == 3

    await tg.press(admin, "admin_announce")
    await tg.send(admin, "Maintenance tonight")
    await tg.press(admin, "admin_announce_confirm")
    outcome = await asyncio.to_thread(run_job, settings, run_announcement, 1)
    assert outcome["delivered"] >= 1

    # ---- the scan ---------------------------------------------------------------------------------
    assert debug_logs.records > 100, "DEBUG capture must have seen the libraries' records too"
    needles = _needles(code, session)
    found = _scan("logs", debug_logs.text, needles)
    found += _scan("database rows", await _db_rows(db), needles)
    dump = _pg_dump(database_url)
    if dump is not None:
        found += _scan("pg_dump", dump, needles)
    found += _scan("redis", await _redis_dump(redis, f"{settings.redis_prefix}fake:"), needles)
    SCAN_RESULT.update(log_records=debug_logs.records, pg_dump=dump is not None, hits=len(found))
    print(f"\nsecrets scan: {debug_logs.records} log records, {len(debug_logs.text)} chars, "
          f"pg_dump {'used' if dump else 'unavailable'}, "
          f"{len(found)} hits")
    assert not found, "\n".join(found[:20])


SCAN_RESULT: dict[str, Any] = {}


def test_url_encoded_bot_token_is_redacted() -> None:
    """Found by the scan: an access log prints the request path with ':' encoded as '%3A'."""
    line = '127.0.0.1:5 - "POST /bot123456%3ATEST-token-for-the-fake-bot-api-0000/sendMessage HTTP/1.1" 200'
    clean = redact(line)
    assert "TEST-token-for-the-fake-bot-api-0000" not in clean and "/sendMessage" in clean
