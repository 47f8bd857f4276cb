"""`make run`: everything a newcomer needs, in one process tree.

Resolves PostgreSQL and Redis (configured, local, or embedded under `.local/`), keeps generated dev
secrets in `.local/dev.env` (so sessions stay decryptable across restarts), asks for sandbox mode
(SANDBOX=1) when no BOT_TOKEN is configured, migrates, then runs the
`Procfile`'s processes (web, worker) plus a dev ticker that calls `/tick` every few seconds, with their
output prefixed, until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx
from dotenv import dotenv_values

from core.crypto import SecretBox
from devtools.services import LOCAL, ROOT, ensure_database, ensure_postgres, ensure_redis, env_or_none

TICK_EVERY_S = 5
READY_TIMEOUT_S = 120  # a first start migrates and may start an embedded PostgreSQL: be patient
# Sandbox mode (SANDBOX=1, asked for when there is no BOT_TOKEN): an admin to act as on the page, the
# shortest interval, and small jitter and pauses, so a cycle shows up in the groups panel within
# seconds of pressing Start.
SANDBOX_ADMIN_ID = 100200300
SANDBOX_DEFAULTS = {
    "ADMIN_IDS": str(SANDBOX_ADMIN_ID),
    "MIN_INTERVAL_MINUTES": "1",
    "JITTER_MAX_MS": "2000",
    "SEND_PAUSE_MIN_MS": "200",
    "SEND_PAUSE_MAX_MS": "600",
    "CONT_DELAY_MS": "500",
    "CONT_JITTER_MS": "500",
}


def _dev_secrets() -> dict[str, str]:
    """Generated once and kept in .local/dev.env; anything set in the environment wins."""
    path = LOCAL / "dev.env"
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                stored[key] = value
    defaults = {
        "SESSION_KEYS": SecretBox.generate_key(),
        "TICK_TOKEN": secrets.token_urlsafe(24),
        "WEBHOOK_SECRET": secrets.token_urlsafe(24),
        "OPS_TOKEN": secrets.token_urlsafe(24),
    }
    for key, value in defaults.items():
        stored.setdefault(key, value)
    LOCAL.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k}={v}\n" for k, v in stored.items()))
    path.chmod(0o600)
    return stored


def _dotenv() -> dict[str, str]:
    """What `.env` sets, read as the settings read it (the environment wins over it)."""
    path = ROOT / ".env"
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def dev_env(environ: Mapping[str, str], dotenv: Mapping[str, str],
            dev_secrets: Mapping[str, str]) -> tuple[dict[str, str], bool]:
    """The processes' environment and whether it is sandbox mode: `.env`, over it what the developer
    exported, then the generated secrets where neither sets them. Sandbox mode is asked for (SANDBOX=1)
    when no BOT_TOKEN is configured: the service itself never assumes it."""
    env = {**dotenv, **environ}
    for key, value in dev_secrets.items():
        env.setdefault(key, value)
    if not env.get("BOT_TOKEN"):
        env.setdefault("SANDBOX", "1")
    return env, _on(env.get("SANDBOX"))


def _prefix_output(name: str, stream: object) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        sys.stdout.write(f"{name:>7} | {line}")
        sys.stdout.flush()


def _ticker(base_url: str, token: str, stop: threading.Event) -> None:
    while not stop.wait(TICK_EVERY_S):
        try:
            response = httpx.post(f"{base_url}/tick", headers={"Authorization": f"Bearer {token}"}, timeout=30)
            if response.status_code == 200 and response.json().get("enqueued"):
                print(f"  ticker | {response.text}")
        except httpx.HTTPError as exc:
            print(f"  ticker | /tick failed: {type(exc).__name__}")


def wait_until_answering(
    base_url: str, alive: Callable[[], bool], timeout_s: float = READY_TIMEOUT_S, *,
    get: Callable[..., object] = httpx.get, sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Until the web process answers HTTP (any status: /health's 503 names what is down, the page
    works all the same). False when the process is gone, or the time ran out. The URLs are printed
    and the ticker started only after this, so nobody opens a page that is not there yet."""
    deadline = clock() + timeout_s
    while clock() < deadline:
        if not alive():
            return False
        try:
            get(f"{base_url}/health", timeout=2)
            return True
        except httpx.HTTPError:
            sleep(0.25)
    return False


def main() -> int:
    env, sandbox = dev_env(os.environ, _dotenv(), _dev_secrets())
    env["DATABASE_URL"] = env_or_none("DATABASE_URL") or ensure_database(ensure_postgres(None), "tgcast_dev")
    env["REDIS_URL"] = ensure_redis(env_or_none("REDIS_URL"))
    port = int(env.get("PORT", "8000"))
    env["PORT"] = str(port)
    base_url = f"http://127.0.0.1:{port}"
    if sandbox:
        env.setdefault("BOT_API_BASE", f"{base_url}/sandbox/botapi")
        for key, value in SANDBOX_DEFAULTS.items():
            env.setdefault(key, value)
    # One worker process here, so no connection can be open in another while Redis's lost state is
    # waited out; without this, each start on a fresh embedded Redis would wait 30 s before posting.
    env.setdefault("CLAIM_STATE_LOSS_WAIT_S", "0")
    python = sys.executable

    migrate = subprocess.run([python, "-m", "tgcast_cli", "migrate"], env=env, cwd=ROOT)
    if migrate.returncode != 0:
        return migrate.returncode

    processes = {
        "web": [python, "-m", "tgcast_cli", "web", "--host", "127.0.0.1", "--port", str(port)],
        "worker": [python, "-m", "tgcast_cli", "worker"],
    }
    children: dict[str, subprocess.Popen[str]] = {}
    for name, command in processes.items():
        child = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
        children[name] = child
        threading.Thread(target=_prefix_output, args=(name, child.stdout), daemon=True).start()

    stop = threading.Event()

    def _shutdown(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _shutdown)
    signal.signal(signal.SIGTERM, _shutdown)
    web = children["web"]
    if wait_until_answering(base_url, lambda: not stop.is_set() and web.poll() is None):
        threading.Thread(target=_ticker, args=(base_url, env["TICK_TOKEN"], stop), daemon=True).start()
        _announce(base_url, env, sandbox)
    elif not stop.is_set():
        print(f"tgcast: the web process did not answer at {base_url} (see its output above); stopping")
        stop.set()
    while not stop.is_set():
        for name, child in children.items():
            if child.poll() is not None:
                print(f"tgcast: {name} exited with {child.returncode}; stopping")
                stop.set()
        time.sleep(0.5)
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    for child in children.values():
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0


def _announce(base_url: str, env: Mapping[str, str], sandbox: bool) -> None:
    mode = "sandbox (SANDBOX=1: built-in Telegram emulator)" if sandbox else "live bot"
    print(f"\ntgcast is running in {mode}\n  health:  {base_url}/health")
    if sandbox:
        print(f"  sandbox: {base_url}/sandbox")
    # The token itself stays out of the terminal (and of any log of it).
    where = "your environment" if "OPS_TOKEN" in os.environ else (
        ".env" if "OPS_TOKEN" in _dotenv() else f"{LOCAL / 'dev.env'}")
    print(f"  ops:     {base_url}/ops  (sign in with OPS_TOKEN from {where})\n")
    if sandbox:
        print(f"  super admins (ADMIN_IDS): {env.get('ADMIN_IDS') or 'none'}: tick 'Act as super admin' on the page\n")


if __name__ == "__main__":
    if not Path(ROOT / "pyproject.toml").exists():
        raise SystemExit("run from the tgcast checkout")
    sys.exit(main())
