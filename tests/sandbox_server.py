"""The whole app in sandbox mode (no bot token), served by uvicorn on a free port in a thread.

The sandbox's bot talks to the Bot API emulator mounted in the app itself, over real HTTP, so the
app must really listen: an in-process ASGI client is not enough. Also runs the RQ worker in burst
mode in a thread, for tests that need the broadcast to actually send.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from core.settings import Settings
from tests.conftest import TICK_TOKEN, make_settings

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
        """Every job due now, in a fresh thread (the runtime keeps one event loop per thread)."""
        from jobs.worker import run_worker

        errors: list[BaseException] = []

        def work() -> None:
            try:
                run_worker(self.settings, burst=True)
            except BaseException as exc:  # re-raised in the test's thread
                errors.append(exc)

        thread = threading.Thread(target=work, name="sandbox-worker", daemon=True)
        thread.start()
        thread.join(120)
        if errors:
            raise errors[0]


@contextmanager
def live_sandbox(database_url: str, redis_url: str, **overrides: Any) -> Iterator[LiveSandbox]:
    from api.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    values: dict[str, Any] = {"bot_token": None, "admin_ids": str(SANDBOX_ADMIN_ID), "min_interval_minutes": 1}
    values.update(overrides)
    settings = make_settings(database_url, redis_url, f"{base_url}/sandbox/botapi", **values)
    assert settings.sandbox
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on",
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
