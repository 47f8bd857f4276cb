"""`tgcast rotate-keys`, `tgcast stats` and the log settings of `tgcast web`, run as real processes
against the test database and Redis, configured only through environment variables."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from redis import Redis as SyncRedis
from rq import Queue

from core.crypto import SecretBox
from tests.conftest import BOT_TOKEN, SESSION_KEY, TICK_TOKEN
from tests.harness import WEBHOOK_SECRET

pytestmark = pytest.mark.slow

OLD_KEY = SESSION_KEY
NEW_KEY = "5a8rH0wZr6wq1kQ9l3f2YdV7m3cJ0kS2nB4tX6yE8uA="
LOST_KEY = Fernet.generate_key().decode()
SESSION = "1" + "BVrY8w1Hq-Rz_" * 27 + "A="


@pytest.fixture
def base_env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    # Built from scratch, so a developer's own environment or .env cannot leak into the run.
    return {
        "PATH": os.environ.get("PATH", ""),
        # The checkout, not only what the editable install maps: the process runs from a scratch cwd.
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SESSION_KEYS": SESSION_KEY,
        "TICK_TOKEN": TICK_TOKEN,
        "GATEWAY": "fake",
        "QUEUE_PREFIX": "tgcast",
    }


def tgcast(env: dict[str, str], cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgcast_cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _sync_db(database_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url, autocommit=True)


def _add_account(conn: psycopg.Connection, owner_id: int, session_enc: bytes, **cols: object) -> None:
    conn.execute("INSERT INTO bot_users (user_id, first_name, status, expires_at) VALUES (%s, 'U', %s, %s)",
                 (owner_id, cols.get("status", "active"), cols.get("expires_at")))
    conn.execute(
        "INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, status, flood_until) "
        "VALUES (%s, %s, '+998901234567', %s, %s, %s)",
        (owner_id, owner_id + 1000, session_enc, cols.get("account_status", "active"), cols.get("flood_until")),
    )


@pytest.mark.parametrize("command", ["rotate-keys", "stats"])
def test_help(base_env, tmp_path, command: str) -> None:
    result = tgcast(base_env, tmp_path, command, "--help")
    assert result.returncode == 0 and f"usage: tgcast {command}" in result.stdout
    listing = tgcast(base_env, tmp_path, "--help")
    assert command in listing.stdout


def test_missing_setting_is_one_clear_line(base_env, tmp_path) -> None:
    env = {k: v for k, v in base_env.items() if k != "DATABASE_URL"}
    result = tgcast(env, tmp_path, "stats")
    assert result.returncode == 2
    assert result.stderr.strip() == "tgcast: setting DATABASE_URL is missing"


def test_unreachable_database_is_one_clear_line(base_env, tmp_path) -> None:
    env = {**base_env, "DATABASE_URL": "postgresql://nobody:pw-never-shown@127.0.0.1:1/none"}
    for command in ("stats", "rotate-keys"):
        result = tgcast(env, tmp_path, command)
        assert result.returncode == 2
        assert result.stderr.strip() == "tgcast: cannot reach PostgreSQL at DATABASE_URL (OperationalError)"
        assert "pw-never-shown" not in result.stderr


def test_bad_batch_size_is_refused(base_env, tmp_path) -> None:
    result = tgcast(base_env, tmp_path, "rotate-keys", "--batch-size", "0")
    assert result.returncode == 2 and "must be at least 1" in result.stderr


def test_rotate_keys_reencrypts_every_session_under_the_first_key(base_env, tmp_path, database_url) -> None:
    old = SecretBox([OLD_KEY])
    with _sync_db(database_url) as conn:
        for owner in (11, 12, 13, 14, 15):
            _add_account(conn, owner, old.encrypt(f"{SESSION}-{owner}"))
        _add_account(conn, 16, SecretBox([NEW_KEY]).encrypt(f"{SESSION}-16"))  # already current
    env = {**base_env, "SESSION_KEYS": f"{NEW_KEY},{OLD_KEY}", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}

    result = tgcast(env, tmp_path, "rotate-keys", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "rotated 5 session(s); 1 already under the first key"
    new_only = SecretBox([NEW_KEY])
    with _sync_db(database_url) as conn:
        rows = conn.execute("SELECT owner_id, session_enc FROM accounts ORDER BY owner_id").fetchall()
    assert [new_only.decrypt(enc) for _, enc in rows] == [f"{SESSION}-{o}" for o, _ in rows]
    # Structured logs from the real process: JSON lines, nothing secret in them.
    logged = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert logged and all(d["level"] == "INFO" for d in logged)
    assert SESSION not in result.stderr and NEW_KEY not in result.stderr and OLD_KEY not in result.stderr

    again = tgcast({**env, "LOG_LEVEL": "WARNING"}, tmp_path, "rotate-keys")
    assert again.returncode == 0
    assert again.stdout.strip() == "rotated 0 session(s); 6 already under the first key"
    assert again.stderr == ""  # INFO lines are below LOG_LEVEL=WARNING


def test_rotate_keys_reports_sessions_no_key_opens(base_env, tmp_path, database_url) -> None:
    with _sync_db(database_url) as conn:
        _add_account(conn, 21, SecretBox([OLD_KEY]).encrypt(SESSION))
        lost = SecretBox([LOST_KEY]).encrypt(SESSION)
        _add_account(conn, 22, lost)
    result = tgcast({**base_env, "SESSION_KEYS": f"{NEW_KEY},{OLD_KEY}"}, tmp_path, "rotate-keys")
    assert result.returncode == 1
    assert "rotated 1 session(s)" in result.stdout
    assert "owner ids: 22" in result.stderr and SESSION not in result.stderr
    with _sync_db(database_url) as conn:
        kept = conn.execute("SELECT session_enc FROM accounts WHERE owner_id = 22").fetchone()
    assert kept is not None and bytes(kept[0]) == lost  # left untouched


def test_stats_counts_users_configs_deliveries_and_queues(base_env, tmp_path, database_url, redis_url) -> None:
    now = datetime.now(UTC)
    enc = SecretBox([OLD_KEY]).encrypt(SESSION)
    with _sync_db(database_url) as conn:
        _add_account(conn, 31, enc)
        _add_account(conn, 32, enc, flood_until=now + timedelta(hours=1))
        _add_account(conn, 33, enc, account_status="revoked", status="banned")
        conn.execute("INSERT INTO bot_users (user_id, first_name) VALUES (34, 'P')")
        conn.execute("INSERT INTO bot_users (user_id, first_name, status, expires_at) "
                     "VALUES (35, 'E', 'active', now() - interval '1 day')")
        (message_id,) = conn.execute("INSERT INTO messages (owner_id, kind, text, content_hash) "
                                     "VALUES (31, 'text', 'hi', 'h') RETURNING id").fetchone()  # type: ignore[misc]
        conn.execute("INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at) "
                     "VALUES (31, %s, 10, true, now())", (message_id,))
        for seq, (sent, failed, finished) in enumerate([(5, 1, "1 hour"), (3, 2, "3 hours"), (9, 9, "30 hours")]):
            conn.execute(
                "INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, "
                "finished_at, status, total, sent, failed) VALUES (31, %s, %s, 10, now(), now(), "
                "now() - %s::interval, 'done', %s, %s, %s)",
                (seq + 1, message_id, finished, sent + failed, sent, failed),
            )
    with SyncRedis.from_url(redis_url) as r:
        Queue("tgcast-broadcast", connection=r).enqueue("jobs.send_batch.send_batch", 1, 0)
        r.set("tgcast:last_tick", time.time() - 30)

    result = tgcast(base_env, tmp_path, "stats", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["users"] == {"pending": 1, "active": 2, "expired": 1, "banned": 1}
    assert found["accounts"] == {"active": 1, "flood_paused": 1, "revoked": 1}
    assert found["configs_active"] == 1
    assert found["deliveries_24h"] == {"sent": 8, "failed": 3, "cancelled": 0}  # the 30 h old cycle is out
    depth = {q["name"]: (q["depth"], q["scheduled"]) for q in found["queues"]}
    assert depth == {"tgcast-broadcast": (1, 0), "tgcast-announce": (0, 0)}
    assert found["last_tick_age_s"] >= 30

    text = tgcast(base_env, tmp_path, "stats")
    assert text.returncode == 0
    assert "deliveries 24h: sent 8, failed 3" in text.stdout and "queue tgcast-broadcast: waiting 1" in text.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_web_logs_json_at_the_configured_level(base_env, tmp_path, botapi_server) -> None:
    port = _free_port()
    env = {**base_env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "BOT_TOKEN": BOT_TOKEN,
           "BOT_API_BASE": botapi_server.base_url, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "tgcast_cli", "web", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tgcast web did not come up"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    messages = [r["msg"] for r in records]
    assert any("Application startup complete" in m for m in messages), messages
    assert {r["logger"] for r in records} >= {"uvicorn.error"}
    assert BOT_TOKEN not in stderr and TICK_TOKEN not in stderr


def test_worker_logs_json_at_the_configured_level(base_env, tmp_path, botapi_server) -> None:
    env = {**base_env, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "BOT_TOKEN": BOT_TOKEN,
           "BOT_API_BASE": botapi_server.base_url}
    result = tgcast(env, tmp_path, "worker", "--burst", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    output = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    records = [json.loads(line) for line in output]  # RQ's own lines too: every one is JSON
    assert any(r["logger"].startswith("rq.") for r in records)
    quiet = tgcast({**env, "LOG_LEVEL": "WARNING"}, tmp_path, "worker", "--burst", timeout=120)
    assert quiet.returncode == 0
    assert not [line for line in (quiet.stdout + quiet.stderr).splitlines() if '"level": "INFO"' in line]
