"""aiogram (and Telethon) stay out of the web process until the first Telegram update: importing
aiogram costs ~155 MiB of RSS, and `/tick`, `/health` and `/metrics` never need it (api/bot_side.py).

Checked in a fresh interpreter, since this test process has long imported both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.settings import Settings
from tests.conftest import TICK_TOKEN
from tests.harness import WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent

# Runs in the child: the web app as `tgcast web` builds it, driven in process through ASGI.
_CHILD = r"""
import asyncio, json, sys

import httpx

from core.settings import load_settings
from tgcast_cli import web_app

HEAVY = ("aiogram", "telethon", "handlers", "api.bot_side")


def loaded():
    return sorted({name for name in sys.modules if name.split(".")[0] in HEAVY or name in HEAVY})


async def main():
    app = web_app(load_settings())
    report = {"after_import": loaded()}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tgcast.test") as client:
            auth = {"Authorization": "Bearer " + sys.argv[1]}
            report["tick"] = (await client.post("/tick", headers=auth)).status_code
            report["health"] = (await client.get("/health")).status_code
            report["metrics"] = (await client.get("/metrics")).status_code
            report["after_requests"] = loaded()
            update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/id",
                      "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "is_bot": False, "first_name": "A"}}}
            headers = {"X-Telegram-Bot-Api-Secret-Token": sys.argv[2]}
            report["webhook"] = (await client.post("/telegram/webhook", json=update, headers=headers)).status_code
            report["after_update"] = loaded()
    print(json.dumps(report))


asyncio.run(main())
"""


def test_tick_health_and_metrics_do_not_import_aiogram(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE", "REDIS"))}
    env.update(
        DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
        SESSION_KEYS=",".join(k.get_secret_value() for k in settings.session_keys),
        TICK_TOKEN=TICK_TOKEN, WEBHOOK_SECRET=WEBHOOK_SECRET, BOT_TOKEN=settings.bot_token_value(),
        BOT_API_BASE=settings.bot_api_base or "", GATEWAY="fake", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT),
    )
    done = subprocess.run([sys.executable, "-c", _CHILD, TICK_TOKEN, WEBHOOK_SECRET], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["tick"], report["health"], report["metrics"]) == (200, 200, 200), report
    assert report["after_import"] == [], report
    assert report["after_requests"] == [], report
    # The first update loads the bot side, and it answers as before.
    assert report["webhook"] == 200, report
    assert "aiogram" in report["after_update"] and "api.bot_side" in report["after_update"], report
