"""Memory: RSS of an idle web process and an idle worker, a few seconds after start-up."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.common import base_env, free_port, fresh_database, proc_stats, spawn, stop_all, wait_http

SETTLE_S = 3


def run(logs: Path) -> list[tuple[str, str, str]]:
    url = fresh_database("tgcast_bench_memory")
    port = free_port()
    env = base_env(url, BOT_API_BASE="http://127.0.0.1:9/unused")
    web = spawn([sys.executable, "-m", "tgcast_cli", "web", "--port", str(port)], env, logs / "memory-web.log")
    worker = spawn([sys.executable, "-m", "tgcast_cli", "worker"], env, logs / "memory-worker.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        time.sleep(SETTLE_S)
        web_rss, worker_rss = proc_stats(web.pid)[1], proc_stats(worker.pid)[1]
    finally:
        stop_all([web, worker])
    return [
        ("memory: idle web process RSS (MiB)", f"{web_rss:.0f}", "uvicorn + Starlette + aiogram, pools open"),
        ("memory: idle worker RSS (MiB)", f"{worker_rss:.0f}", "RQ SimpleWorker, send job preloaded"),
    ]
