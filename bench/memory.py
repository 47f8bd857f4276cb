"""Memory: RSS of an idle web process and an idle worker, a few seconds after start-up; then the web
process again after its first Telegram update, which imports aiogram (api/bot_side.py): the
difference is what keeping aiogram off the tick/health/metrics path saves while no update comes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx

from bench.common import (
    TICK_TOKEN,
    WEBHOOK_SECRET,
    base_env,
    free_port,
    fresh_database,
    proc_stats,
    spawn,
    stop_all,
    wait_http,
)

SETTLE_S = 3
GOAL_IDLE_WEB_MIB = 150
UPDATE = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/id", "chat": {"id": 5, "type": "private"},
                                      "from": {"id": 5, "is_bot": False, "first_name": "Bench"}}}


def run(logs: Path) -> list[tuple[str, str, str]]:
    url = fresh_database("tgcast_bench_memory")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = base_env(url, BOT_API_BASE="http://127.0.0.1:9/unused")
    web = spawn([sys.executable, "-m", "tgcast_cli", "web", "--port", str(port)], env, logs / "memory-web.log")
    worker = spawn([sys.executable, "-m", "tgcast_cli", "worker"], env, logs / "memory-worker.log")
    try:
        wait_http(f"{base}/health")
        # The idle web process as the cron and the probes see it: a tick, a health check, a scrape.
        httpx.post(f"{base}/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"}, timeout=30)
        httpx.get(f"{base}/metrics", timeout=30)
        time.sleep(SETTLE_S)
        web_rss, worker_rss = proc_stats(web.pid)[1], proc_stats(worker.pid)[1]
        status = httpx.post(f"{base}/telegram/webhook", json=UPDATE, timeout=60,
                            headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}).status_code
        time.sleep(SETTLE_S)
        web_updated_rss = proc_stats(web.pid)[1]
    finally:
        stop_all([web, worker])
    verdict = "met" if web_rss <= GOAL_IDLE_WEB_MIB else "MISSED"
    return [
        ("memory: idle web process RSS (MiB)", f"{web_rss:.0f}",
         f"uvicorn + Starlette, pools open, after a /tick, a /health and a /metrics; aiogram not imported; "
         f"goal ≤ {GOAL_IDLE_WEB_MIB}: {verdict}"),
        ("memory: web process RSS after its first update (MiB)", f"{web_updated_rss:.0f}",
         f"the same process once an update (answered {status}) has imported aiogram and built the dispatcher "
         "(what it idled at before aiogram was loaded lazily)"),
        ("memory: idle worker RSS (MiB)", f"{worker_rss:.0f}", "RQ SimpleWorker, send job preloaded"),
    ]
