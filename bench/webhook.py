"""Webhook throughput: our Starlette endpoint under uvicorn vs aiogram's aiohttp handler, same router,
same dispatcher factory, same fake Bot API, same load generator; alternated repetitions."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import (
    ROOT,
    WEBHOOK_SECRET,
    Spread,
    base_env,
    flush_redis,
    free_port,
    fresh_database,
    percentile,
    spawn,
    stop_all,
    wait_http,
)

CONCURRENCY = 32
UPDATES_PER_RUN = 1000
REPETITIONS = 3
USERS = 200
_ids = itertools.count(1)


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int


def _update(user_id: int) -> dict[str, object]:
    uid = next(_ids)
    return {
        "update_id": uid,
        "message": {
            "message_id": uid, "date": int(time.time()), "text": "/id",
            "entities": [{"type": "bot_command", "offset": 0, "length": 3}],
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Bench", "language_code": "en"},
        },
    }


async def _load(url: str, count: int) -> Run:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(800_000_000 + i % USERS)
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            user_id = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post(url, json=_update(user_id), headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return Run(count / elapsed, percentile(latencies, 50), percentile(latencies, 99), errors)


def run(logs: Path) -> list[tuple[str, str, str]]:
    database_url = fresh_database("tgcast_bench_webhook")
    flush_redis()
    api_port, ours_port, theirs_port = free_port(), free_port(), free_port()
    python = sys.executable
    env = base_env(database_url, BOT_API_BASE=f"http://127.0.0.1:{api_port}")
    api = spawn([python, "-m", "bench.fake_botapi_server", "--port", str(api_port)], env, logs / "botapi.log")
    ours = spawn([python, "-m", "tgcast_cli", "web", "--port", str(ours_port)], env, logs / "web.log")
    theirs = spawn([python, "-m", "bench.aiogram_server", "--port", str(theirs_port)], env, logs / "aiogram.log")
    try:
        wait_http(f"http://127.0.0.1:{api_port}/bot{env['BOT_TOKEN']}/getMe")
        wait_http(f"http://127.0.0.1:{ours_port}/health")
        wait_http(f"http://127.0.0.1:{theirs_port}/telegram/webhook")
        targets = {
            "ours": f"http://127.0.0.1:{ours_port}/telegram/webhook",
            "aiogram": f"http://127.0.0.1:{theirs_port}/telegram/webhook",
        }
        for url in targets.values():  # warm-up: first contact creates each user's row
            asyncio.run(_load(url, USERS))
        runs: dict[str, list[Run]] = {name: [] for name in targets}
        for _ in range(REPETITIONS):
            for name, url in targets.items():
                runs[name].append(asyncio.run(_load(url, UPDATES_PER_RUN)))
    finally:
        stop_all([ours, theirs, api])
    rows = []
    for name, label in (("ours", "(a) Starlette + uvicorn"), ("aiogram", "(b) aiogram aiohttp handler")):
        r = runs[name]
        rows.append((
            f"webhook {label}: updates/s",
            Spread.of([x.rate for x in r]).fmt(0),
            f"p50 {Spread.of([x.p50_ms for x in r]).fmt(1)} ms, p99 {Spread.of([x.p99_ms for x in r]).fmt(1)} ms, "
            f"errors {sum(x.errors for x in r)}",
        ))
    ratios = [a.rate / b.rate for a, b in zip(runs["ours"], runs["aiogram"], strict=True)]
    verdict = "met" if Spread.of(ratios).median >= 1.0 else "MISSED"
    rows.append(("webhook throughput ratio (a)/(b)", Spread.of(ratios).fmt(2), f"goal ≥ 1.0: {verdict}"))
    return rows


if __name__ == "__main__":
    for row in run(ROOT / "artifacts" / "bench"):
        print(" | ".join(row))
