"""The whole app in sandbox mode (SANDBOX=1, no bot token), served by uvicorn on a free port in a thread.

The sandbox's bot talks to the Bot API emulator mounted in the app itself, over real HTTP, so the
app must really listen: an in-process ASGI client is not enough. Also runs the RQ worker in burst
mode in a child process, for tests that need the broadcast to actually send.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import SecretStr

from core.settings import Settings
from tests.conftest import TICK_TOKEN, make_settings

ROOT = Path(__file__).resolve().parent.parent

SANDBOX_ADMIN_ID = 100200300


@dataclass
class LiveSandbox:
    base_url: str
    settings: Settings

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def tick(self) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"}, timeout=30)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def run_worker(self) -> None:
        """`tgcast worker --burst`: every job due now, in its own process as in production (RQ
        installs signal handlers, which only the main thread may do)."""
        done = subprocess.run([sys.executable, "-m", "tgcast_cli", "worker", "--burst"],
                              env=settings_env(self.settings), cwd=ROOT, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"worker failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes `load_settings()` in a child process equal to `settings`."""
    env = {k: v for k, v in os.environ.items() if k not in {"BOT_TOKEN"}}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            env.pop(name.upper(), None)
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, (frozenset, tuple, list)):
            value = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else str(v) for v in value)
        env[name.upper()] = str(value)
    return env


@contextmanager
def live_sandbox(database_url: str, redis_url: str, **overrides: Any) -> Iterator[LiveSandbox]:
    from tgcast_cli import web_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    values: dict[str, Any] = {"sandbox": True, "bot_token": None, "admin_ids": str(SANDBOX_ADMIN_ID),
                              "min_interval_minutes": 1}
    values.update(overrides)
    settings = make_settings(database_url, redis_url, f"{base_url}/sandbox/botapi", **values)
    assert settings.sandbox
    server = uvicorn.Server(uvicorn.Config(web_app(settings), log_level="warning", lifespan="on",
                                           access_log=False, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sandbox-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the sandbox app did not start")
        time.sleep(0.02)
    try:
        yield LiveSandbox(base_url, settings)
    finally:
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        sock.close()


# ---- driving the page's endpoints the way a person on the page would ---------------------------------


def press(c: httpx.Client, user: dict[str, Any], data: str) -> None:
    """Press the newest bot button with this callback id in the user's chat."""
    view = c.get(f"/sandbox/api/chat/{user['id']}").json()
    message = next(m for m in reversed(view["messages"]) if m["from_bot"] and not m["deleted"]
                   and any(b.get("callback_data") == data for row in m["inline"] for b in row))
    answer = c.post("/sandbox/api/press", json={"user": user, "message_id": message["id"], "data": data}).json()
    assert answer["ok"], answer


def say(c: httpx.Client, user: dict[str, Any], text: str) -> None:
    answer = c.post("/sandbox/api/send", json={"user": user, "text": text}).json()
    assert answer["ok"], answer


def broadcast_a_photo(live: LiveSandbox, user: dict[str, Any], phone: str, png: bytes, caption: str,
                      chat_id: int, deadline_s: float = 90) -> dict[str, Any]:
    """Access from the admin, login with the code, every group, a photo with `caption` as the
    message, a 1-minute interval; then tick and run the worker until `chat_id` shows the photo post.
    Returns that post as the network panel has it."""
    admin = {"id": SANDBOX_ADMIN_ID, "first_name": "Admin", "language_code": "en"}
    with live.client() as c:
        say(c, user, "/start")
        say(c, admin, f"/adduser {user['id']} 30")
        press(c, user, "login")
        assert c.post("/sandbox/api/contact", json={"user": user, "phone": phone}).json()["ok"]
        code = next(x["code"] for x in c.get(f"/sandbox/api/network?user={user['id']}").json()["codes"]
                    if x["phone"] == phone)
        say(c, user, " ".join(code))
        say(c, user, "/import_groups")
        say(c, user, "/menu")
        press(c, user, "send_message")
        answer = c.post("/sandbox/api/media", json={"user": user, "kind": "photo", "file_name": "ad.png",
                                                     "data": base64.b64encode(png).decode(), "caption": caption})
        assert answer.json()["ok"], answer.text
        press(c, user, "set_interval_custom")
        say(c, user, "1")
        deadline = time.monotonic() + deadline_s
        while True:
            groups = c.get("/sandbox/api/network").json()["groups"]
            posts = next(g for g in groups if g["chat_id"] == chat_id)["posts"]
            if posts:
                return dict(posts[-1])
            assert time.monotonic() < deadline, "the photo was not posted in time"
            live.tick()
            live.run_worker()
            time.sleep(0.5)
