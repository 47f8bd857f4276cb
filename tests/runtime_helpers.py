"""Builds broadcast-ready users straight through the db functions (no login handlers needed), and a
`JobContext` for running the send-batch job in-process."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from psycopg import AsyncConnection

from core.crypto import SecretBox
from core.settings import Settings
from db import accounts, configs, users
from userbot.fake import FakeGateway, FakeGroup, FakeTelegram
from worker import context
from worker.context import JobContext, open_context

GROUP_BASE = -1_001_000_000_000
T = TypeVar("T")


@dataclass
class Broadcaster:
    user_id: int
    tg_user_id: int
    phone: str
    chat_ids: list[int]
    message_id: int
    session: str
    account_id: int = 0  # the account's own id (connection claims, locks and groups name it)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def add_message(conn: AsyncConnection, owner_id: int, text: str, *, kind: str = "text",
                      media: bytes | None = None) -> int:
    media_id = None
    if media is not None:
        cur = await conn.execute(
            """
            INSERT INTO media (owner_id, kind, bot_file_id, file_name, mime_type, size, sha256, data)
            VALUES (%(o)s, %(k)s, 'file-1', 'photo.jpg', 'image/jpeg', %(n)s, %(h)s, %(d)s) RETURNING id
            """,
            {"o": owner_id, "k": kind, "n": len(media), "h": hashlib.sha256(media).hexdigest(), "d": media},
        )
        row = await cur.fetchone()
        assert row is not None
        media_id = row[0]
    cur = await conn.execute(
        """
        INSERT INTO messages (owner_id, kind, text, entities, media_id, content_hash)
        VALUES (%(o)s, %(k)s, %(t)s, '[]', %(m)s, %(h)s) RETURNING id
        """,
        {"o": owner_id, "k": kind, "t": text, "m": media_id, "h": hashlib.sha256(text.encode()).hexdigest()},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def fake_login(net: FakeTelegram, phone: str, listed: Sequence[tuple[int, str, int]]) -> tuple[int, str]:
    """An emulated account that is a member of the `listed` groups (chat id, title, seconds), logged in
    through the gateway as the bot does; returns (Telegram user id, session string)."""
    tg_user_id = await net.add_account(phone)
    for chat_id, title, _ in listed:
        await net.add_group(FakeGroup(chat_id, title), members=[tg_user_id])
    gateway = FakeGateway(net)
    code_sent = await gateway.send_code(phone)
    code = await net.last_code(phone)
    assert code is not None
    signed = await gateway.sign_in(code_sent.temp_session, phone, code, code_sent.phone_code_hash)
    return tg_user_id, signed.session  # type: ignore[union-attr]


async def store_account(conn: AsyncConnection, settings: Settings, owner_id: int, tg_user_id: int, phone: str,
                        session: str, listed: Sequence[tuple[int, str, int]]) -> int:
    """The account stored for `owner_id`, with the `listed` groups (chat id, title, seconds after now it
    was added) selected in the list and posted from it; returns the account id."""
    account_id = await accounts.store(conn, owner_id, tg_user_id=tg_user_id, phone=phone,
                                      session_enc=SecretBox(settings.session_keys).encrypt(session))
    for chat_id, title, added_s in listed:
        await conn.execute(
            """
            INSERT INTO groups (owner_id, chat_id, title, kind, selected, added_at, account_id)
            VALUES (%(o)s, %(c)s, %(t)s, 'supergroup', true, now() + make_interval(secs => %(n)s), %(a)s)
            """,
            {"o": owner_id, "c": chat_id, "t": title, "n": added_s, "a": account_id},
        )
    return account_id


async def make_broadcaster(
    conn: AsyncConnection, net: FakeTelegram, settings: Settings, user_id: int, *,
    groups: int = 3, interval_minutes: int = 10, first_run_at: datetime | None = None,
    expires_at: datetime | None = None, text: str = "Hello <b>groups</b>", active: bool = True,
    chat_ids: Sequence[int] | None = None, media: bytes | None = None,
) -> Broadcaster:
    """An allowed user with a logged-in fake account, `groups` selected groups, a message and (if
    `active`) a running config due at `first_run_at` (default: now)."""
    phone = f"+99890{user_id % 10_000_000:07d}"
    if chat_ids is None:
        chat_ids = [GROUP_BASE - user_id * 100 - n for n in range(groups)]
    listed = [(chat_id, f"Group {n} <of {user_id}>", n) for n, chat_id in enumerate(chat_ids)]
    tg_user_id, session = await fake_login(net, phone, listed)
    await users.set_access(conn, user_id, status="active", expires_at=expires_at)
    await conn.execute(
        "UPDATE bot_users SET first_name = 'U', language = 'en' WHERE user_id = %(id)s", {"id": user_id}
    )
    account_id = await store_account(conn, settings, user_id, tg_user_id, phone, session, listed)
    kind = "photo" if media is not None else "text"
    message_id = await add_message(conn, user_id, text, kind=kind, media=media)
    await configs.set_message(conn, user_id, message_id)
    if active:
        await configs.activate(conn, user_id, interval_minutes, first_run_at or utcnow())
    return Broadcaster(user_id, tg_user_id, phone, list(chat_ids), message_id, session, account_id)


def run_job(settings: Settings, function: Callable[..., T], *args: Any) -> T:
    """Call an RQ job function as RQ's stock worker would, on a job loop of this thread's own (with the
    job context `settings` give), closed after; from a thread (`asyncio.to_thread`), not a running loop."""
    context.use_settings(settings)
    try:
        return function(*args)
    finally:
        context.close_runtime()
        context.use_settings(None)


@asynccontextmanager
async def job_context(settings: Settings) -> AsyncIterator[JobContext]:
    async with AsyncExitStack() as stack:
        yield await open_context(settings, stack)


async def deliveries_of(conn: AsyncConnection, cycle_id: int) -> list[dict]:
    cur = await conn.execute(
        "SELECT id, chat_id, status, retry, reason, error, next_attempt_at, sent_at, tg_message_id, random_id, "
        "wait_until, unsure_since, account_id "
        "FROM deliveries WHERE cycle_id = %(c)s ORDER BY position", {"c": cycle_id},
    )
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def cycle_row(conn: AsyncConnection, cycle_id: int) -> dict:
    cur = await conn.execute("SELECT * FROM cycles WHERE id = %(c)s", {"c": cycle_id})
    names = [d.name for d in cur.description or []]
    row = await cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


async def config_row(conn: AsyncConnection, owner_id: int) -> dict:
    cur = await conn.execute("SELECT * FROM configs WHERE owner_id = %(c)s", {"c": owner_id})
    names = [d.name for d in cur.description or []]
    row = await cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


async def make_due(conn: AsyncConnection, owner_id: int, at: datetime | None = None) -> None:
    """Let the next cycle start now: tests skip the interval by moving the owner's clock back — the
    config's next start, its previous cycle's scheduled start, and every group's last post — by as
    much as would have passed."""
    at = at or utcnow() - timedelta(seconds=1)
    cur = await conn.execute(
        "SELECT next_run_at, interval_minutes FROM configs WHERE owner_id = %(id)s", {"id": owner_id}
    )
    row = await cur.fetchone()
    assert row is not None
    shift = max(row[0] - at, timedelta(0)) + timedelta(minutes=int(row[1]))
    await conn.execute(
        """
        UPDATE configs SET next_run_at = %(at)s, last_scheduled_at = last_scheduled_at - %(shift)s
        WHERE owner_id = %(id)s
        """,
        {"id": owner_id, "at": at, "shift": shift},
    )
    await conn.execute(
        "UPDATE groups SET last_sent_at = last_sent_at - %(shift)s WHERE owner_id = %(id)s",
        {"id": owner_id, "shift": shift},
    )



def worker_env(settings: Settings, **overrides: object) -> dict[str, str]:
    """The environment of a real worker process talking to the test database, Redis and fake APIs."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TGCAST_TEST_")}
    env.update({
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SESSION_KEYS": ",".join(k.get_secret_value() for k in settings.session_keys),
        "TICK_TOKEN": settings.tick_token.get_secret_value(),
        "BOT_TOKEN": settings.bot_token.get_secret_value() if settings.bot_token else "",
        "BOT_API_BASE": settings.bot_api_base or "",
        "GATEWAY": "fake",
        "JITTER_MAX_MS": str(settings.jitter_max_ms),
        "SEND_PAUSE_MIN_MS": str(settings.send_pause_min_ms),
        "SEND_PAUSE_MAX_MS": str(settings.send_pause_max_ms),
        "CONT_DELAY_MS": str(settings.cont_delay_ms),
        "CONT_JITTER_MS": str(settings.cont_jitter_ms),
        "CLAIM_STATE_LOSS_WAIT_S": str(settings.claim_state_loss_wait_s or 0),
        "LOG_LEVEL": "INFO",
    })
    env.update({k.upper(): str(v) for k, v in overrides.items()})
    return env


class WorkerProcess(subprocess.Popen[bytes]):
    """A worker process whose output goes to a file, not a pipe: a pipe nobody reads until the process
    ends holds 64 KiB, and a worker that logs more than that meanwhile (a hundred batches do) blocks in
    its next log line, job loop included, until the test reads — the test would be measuring a worker
    it froze itself. `communicate` returns the whole output, as with a pipe."""

    def __init__(self, args: list[str], **kwargs: Any) -> None:
        self._output = tempfile.TemporaryFile()
        self._read: bytes | None = None
        super().__init__(args, stdout=self._output, stderr=subprocess.STDOUT, **kwargs)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[bytes, bytes]:
        self.wait(timeout)
        if self._read is None:
            self._output.seek(0)
            self._read = self._output.read()
            self._output.close()
        return self._read, b""  # stderr is in the output


def spawn_worker(settings: Settings, *, burst: bool, **env_overrides: object) -> WorkerProcess:
    """A real `tgcast worker` process; given a TGCAST_TEST_* fault among the overrides, it runs through
    tests/worker_faults.py, which injects it."""
    faults = any(k.upper().startswith("TGCAST_TEST_") for k in env_overrides)
    entry = "tests.worker_faults" if faults else "tgcast_cli"
    args = [sys.executable, "-m", entry, "worker"] + (["--burst"] if burst else [])
    # A session of its own, killed whole when the tests end: a worker SIGKILLed by a test (or left behind
    # by a failing one) takes whatever it started with it.
    proc = WorkerProcess(args, env=worker_env(settings, **env_overrides), cwd=Path(__file__).parent.parent,
                         start_new_session=True)
    _spawned.append(proc.pid)
    return proc


_spawned: list[int] = []


@atexit.register
def _kill_spawned() -> None:
    for pgid in _spawned:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


# Every stored time of one owner, so a test can let minutes pass in an instant (see `TimeTravel`).
_OWNER_TIMES = {
    "configs": ("owner_id", ["next_run_at", "last_scheduled_at"]),
    "cycles": ("owner_id", ["scheduled_at", "run_at", "started_at", "finished_at", "created_at"]),
    "deliveries": ("owner_id", ["next_attempt_at", "sent_at", "lease_until"]),
    "groups": ("owner_id", ["last_sent_at"]),
    "accounts": ("owner_id", ["flood_until"]),
}


class TimeTravel:
    """Lets time pass for one owner without waiting: every stored time of the owner moves back by the
    same amount, which to the tick and the worker (who compare them with the real clock) is the
    same as that much time passing. `virtual(t)` maps a real time seen since then (an emulator post)
    onto the test's own timeline, on which spacing between posts is measured."""

    def __init__(self, conn: AsyncConnection, owner_id: int) -> None:
        self.conn = conn
        self.owner_id = owner_id
        self.offset = 0.0  # seconds travelled so far

    async def advance(self, seconds: float) -> None:
        shift = timedelta(seconds=seconds)
        for table, (key, columns) in _OWNER_TIMES.items():
            sets = ", ".join(f"{c} = {c} - %(shift)s" for c in columns)
            await self.conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = %(id)s",
                                    {"shift": shift, "id": self.owner_id})
        self.offset += seconds
