"""Any ASGI app, lifespan included, served by a real uvicorn on 127.0.0.1 from a background thread:
for clients that must reach it over the network (a browser, a subprocess, aiogram's HTTP session).
Used by the tests and by `FakeBotAPIServer`."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Literal, Self

import uvicorn


class LiveServer:
    def __init__(self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "on", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app, self.lifespan, self.host = app, lifespan, host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> Self:
        if self._thread is not None:
            return self
        # Bound here (port 0: a free one), so the port is known before uvicorn runs, without a race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        # No signal handlers to switch off: uvicorn only installs them when serving from the main thread.
        config = uvicorn.Config(self.app, lifespan=self.lifespan, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="live-server", daemon=True)
        self._server, self._thread, self._sock = server, thread, sock
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the live server failed to start (see the log above)")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread, sock = self._server, self._thread, self._sock
        self._server = self._thread = self._sock = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(timeout)
        if sock is not None:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
