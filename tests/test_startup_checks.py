"""Start-up fails closed, as real processes: a malformed setting, an unreachable or silent PostgreSQL
or Redis, a production start without its Telegram credentials, and sandbox mode outside loopback each
stop the command with one stderr line naming the culprit and exit code 2 — never a traceback, never
a hang (the subprocess timeout is the hang detector, not a timing assertion)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.settings import SettingsError
from tests.conftest import BOT_TOKEN, SESSION_KEY, TICK_TOKEN, make_settings
from tgcast_cli import check_bind

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HANG_DETECTOR_S = 30
BAD_KEY = "not-a-fernet-key-but-a-secret-all-the-same"
PASSWORD = "pw-never-shown"


@pytest.fixture
def env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    # From scratch, and run from a scratch directory: no developer environment or .env leaks in.
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SESSION_KEYS": SESSION_KEY,
        "TICK_TOKEN": TICK_TOKEN,
        "BOT_TOKEN": BOT_TOKEN,
        "GATEWAY": "fake",
        "QUEUE_PREFIX": "tgcast-startup-test",
        # web and worker give up at once here; their wait for a restarting service is tested below.
        "STARTUP_WAIT_S": "0",
    }


def tgcast(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tgcast_cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=HANG_DETECTOR_S)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("tgcast: ") and "Traceback" not in result.stderr
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Forwarder:
    """A service that is down (every connection dropped at once, and counted) until `open()`, then
    forwards each connection to the real server: a database coming back while a process starts."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.dropped = 0
        self.is_open = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self.is_open = True

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.is_open:
                self.dropped += 1
                client.close()
                continue
            server = socket.create_connection(self.upstream)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung server or a black-holed proxy."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


# ---- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["web", "worker", "rotate-keys", "tick"])
def test_malformed_session_keys(env, tmp_path, command: str) -> None:
    line = one_line(tgcast({**env, "SESSION_KEYS": f"{SESSION_KEY},{BAD_KEY}"}, tmp_path, command))
    assert "SESSION_KEYS" in line and "key 2" in line and BAD_KEY not in line


@pytest.mark.parametrize("command", ["tick", "worker"])
def test_redis_url_that_is_not_a_url(env, tmp_path, command: str) -> None:
    assert "REDIS_URL" in one_line(tgcast({**env, "REDIS_URL": "nope"}, tmp_path, command))


def test_database_url_that_is_not_a_url(env, tmp_path) -> None:
    assert "DATABASE_URL" in one_line(tgcast({**env, "DATABASE_URL": "foo"}, tmp_path, "web"))


# ---- services --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["web", "worker", "tick", "stats"])
def test_unreachable_redis(env, tmp_path, command: str) -> None:
    line = one_line(tgcast({**env, "REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:1/0"}, tmp_path, command))
    assert "Redis" in line and "REDIS_URL" in line and PASSWORD not in line


@pytest.mark.parametrize("command", ["web", "worker", "tick", "migrate", "rotate-keys", "stats"])
def test_unreachable_postgres(env, tmp_path, command: str) -> None:
    url = f"postgresql://nobody:{PASSWORD}@127.0.0.1:1/none"
    line = one_line(tgcast({**env, "DATABASE_URL": url}, tmp_path, command))
    assert "PostgreSQL" in line and "DATABASE_URL" in line and PASSWORD not in line


def test_silent_redis_is_not_a_hang(env, tmp_path, silent_port: int) -> None:
    line = one_line(tgcast({**env, "REDIS_URL": f"redis://127.0.0.1:{silent_port}/0"}, tmp_path, "tick"))
    assert "REDIS_URL" in line


def test_silent_postgres_is_not_a_hang(env, tmp_path, silent_port: int) -> None:
    url = f"postgresql://nobody@127.0.0.1:{silent_port}/none"
    assert "DATABASE_URL" in one_line(tgcast({**env, "DATABASE_URL": url}, tmp_path, "worker"))


def test_worker_gives_up_after_its_startup_wait(env, tmp_path) -> None:
    defaults = {k: v for k, v in env.items() if k != "STARTUP_WAIT_S"}  # the default wait (15 s)
    line = one_line(tgcast({**defaults, "REDIS_URL": "redis://127.0.0.1:1/0"}, tmp_path, "worker", "--burst"))
    assert "REDIS_URL" in line


def test_worker_waits_for_a_database_coming_back(env, tmp_path, database_url: str) -> None:
    """A worker started while PostgreSQL restarts (the soak does this all the time) is not lost."""
    params = conninfo_to_dict(database_url)
    upstream = (str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    forwarder = Forwarder(upstream)
    url = make_conninfo(database_url, host="127.0.0.1", port=str(forwarder.port))
    worker = subprocess.Popen([sys.executable, "-m", "tgcast_cli", "worker", "--burst"],
                              env={**env, "DATABASE_URL": url, "STARTUP_WAIT_S": "20"}, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + HANG_DETECTOR_S
        # One attempt may be dropped twice (libpq tries SSL, then without): three drops are a second try.
        while forwarder.dropped < 3:  # it found the database down, and tried again instead of exiting
            assert worker.poll() is None, worker.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the worker never tried to reach PostgreSQL"
            time.sleep(0.1)
        forwarder.open()
        _, stderr = worker.communicate(timeout=HANG_DETECTOR_S)
    finally:
        if worker.poll() is None:
            worker.kill()
        forwarder.close()
    assert worker.returncode == 0, stderr[-2000:]


# ---- production needs its credentials; sandbox mode is asked for and stays on loopback ------------------


@pytest.mark.parametrize("command", ["web", "worker", "tick"])
def test_production_start_without_bot_token(env, tmp_path, command: str) -> None:
    production = {k: v for k, v in env.items() if k != "BOT_TOKEN"}
    assert "BOT_TOKEN" in one_line(tgcast(production, tmp_path, command))


@pytest.mark.parametrize("command", ["web", "worker"])
def test_production_start_without_api_credentials(env, tmp_path, command: str) -> None:
    # GATEWAY=auto outside sandbox mode means Telethon: emulated accounts are never a silent fallback.
    line = one_line(tgcast({**env, "GATEWAY": "auto"}, tmp_path, command))
    assert "API_ID" in line and "API_HASH" in line
    line = one_line(tgcast({**env, "GATEWAY": "auto", "API_ID": "12345"}, tmp_path, command))
    assert "API_HASH" in line and "API_ID" not in line


def test_sandbox_web_refuses_a_public_host(env, tmp_path) -> None:
    sandbox = {**{k: v for k, v in env.items() if k != "BOT_TOKEN"}, "SANDBOX": "1"}
    line = one_line(tgcast(sandbox, tmp_path, "web", "--host", "0.0.0.0"))
    assert "SANDBOX_ALLOW_REMOTE" in line


def test_sandbox_web_serves_the_sandbox_on_loopback(env, tmp_path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    sandbox = {**{k: v for k, v in env.items() if k not in {"BOT_TOKEN", "GATEWAY"}}, "SANDBOX": "1",
               "BOT_API_BASE": f"{base}/sandbox/botapi", "ADMIN_IDS": "100200300"}
    proc = subprocess.Popen([sys.executable, "-m", "tgcast_cli", "web", "--port", str(port)], env=sandbox,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tgcast web did not come up"
            time.sleep(0.2)
        assert httpx.get(f"{base}/sandbox", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


# ---- the same rules in process ---------------------------------------------------------------------


@pytest.mark.parametrize(("host", "sandbox", "allow_remote", "refused"), [
    ("0.0.0.0", True, False, True), ("::", True, False, True), ("192.168.1.10", True, False, True),
    ("example.org", True, False, True),
    ("127.0.0.1", True, False, False), ("127.0.0.5", True, False, False), ("::1", True, False, False),
    ("localhost", True, False, False),
    ("0.0.0.0", True, True, False), ("0.0.0.0", False, False, False),
])
def test_bind_rule(database_url, redis_url, host: str, sandbox: bool, allow_remote: bool, refused: bool) -> None:
    settings = make_settings(database_url, redis_url, "http://127.0.0.1:9", sandbox=sandbox,
                             sandbox_allow_remote=allow_remote)
    if refused:
        with pytest.raises(SettingsError, match="SANDBOX_ALLOW_REMOTE"):
            check_bind(settings, host)
    else:
        check_bind(settings, host)


async def test_no_sandbox_page_unless_asked_for(client) -> None:
    # The harness's app: a bot token, the emulated gateway on purpose, no SANDBOX.
    assert (await client.get("/sandbox")).status_code == 404
    assert (await client.get("/sandbox/api/network")).status_code == 404


def test_app_refuses_to_build_without_credentials(database_url, redis_url) -> None:
    from api.app import create_app

    with pytest.raises(SettingsError, match="BOT_TOKEN"):
        create_app(make_settings(database_url, redis_url, "http://127.0.0.1:9", bot_token=None))
    with pytest.raises(SettingsError, match="API_ID"):
        create_app(make_settings(database_url, redis_url, "http://127.0.0.1:9", gateway="auto"))


def test_redis_gone_between_the_check_and_the_worker_start_is_the_same_one_line(
    env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RQ's Worker talks to Redis as it is built, before its own retrying loop: a Redis stopped in
    that moment gave a traceback and exit 1 (seen in the soak); it is the start-up check's exit 2."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    import tgcast_cli
    import worker.process

    def gone(*args: object, **kwargs: object) -> bool:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(tgcast_cli, "_reach", lambda *a, **k: None)
    monkeypatch.setattr(worker.process, "run_worker", gone)
    monkeypatch.setattr(tgcast_cli, "warn_server", lambda settings: False)  # the server's own settings: not this test's
    assert tgcast_cli.main(["worker", "--burst"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "REDIS_URL" in err[0] and "Traceback" not in err[0]


def test_autovacuum_is_read_from_the_server(database_url: str) -> None:
    import psycopg

    from db.ops import autovacuum_on

    with psycopg.connect(database_url) as conn:
        shown = conn.execute("SHOW autovacuum").fetchone()
        assert shown is not None
        assert autovacuum_on(conn) is (shown[0] == "on")


@pytest.mark.parametrize("on", [True, False])
def test_a_worker_warns_once_when_autovacuum_is_off(database_url, redis_url, monkeypatch, caplog,
                                                    on: bool) -> None:
    import db.ops

    monkeypatch.setattr(db.ops, "autovacuum_on", lambda conn: on)
    with caplog.at_level(logging.WARNING, logger="tgcast_cli"):
        assert warn_server_on(database_url, redis_url) is (not on)
    warned = [r for r in caplog.records if r.name == "tgcast_cli" and r.levelno == logging.WARNING]
    assert [("autovacuum" in r.getMessage()) for r in warned] == ([] if on else [True])


def test_the_warning_never_stops_a_start_it_cannot_check(redis_url, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="tgcast_cli"):
        assert warn_server_on("postgresql://nobody@127.0.0.1:1/none", redis_url) is False
    assert [r for r in caplog.records if r.name == "tgcast_cli"] == []


def warn_server_on(database_url: str, redis_url: str) -> bool:
    from tgcast_cli import warn_server

    return warn_server(make_settings(database_url, redis_url, "http://127.0.0.1:1"))
