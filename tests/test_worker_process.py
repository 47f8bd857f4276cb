"""The worker process: light imports, burst runs through `tgcast worker`, graceful SIGTERM, and the
end-to-end path webhook → POST /tick → worker → fake groups → cycle summary → menu line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.tick import tick
from tests.conftest import TICK_TOKEN
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in, make_groups
from tests.runtime_helpers import cycle_row, deliveries_of, make_broadcaster, spawn_worker
from tgcast_cli import COMMANDS

ROOT = Path(__file__).parent.parent


def test_worker_does_not_import_the_web_stack() -> None:
    code = (
        "import sys, worker.process, jobs.send_batch, jobs.tick\n"
        "heavy = [m for m in ('aiogram', 'starlette', 'uvicorn', 'api.app') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_tick_and_worker_are_commands() -> None:
    assert {"tick", "worker"} <= set(COMMANDS)


@pytest.mark.slow
async def test_sigterm_lets_the_current_job_finish(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 3001, groups=5)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    worker = spawn_worker(settings, burst=False, send_pause_min_ms=400, send_pause_max_ms=400)
    try:
        for _ in range(600):
            if await net.posted(b.chat_ids[0]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker never sent")
        worker.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, out.decode()[-2000:]
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1] * 5
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"sent"}
    assert (await cycle_row(db, cycle_id))["outcome"] == "sent"


@pytest.mark.slow
async def test_end_to_end_webhook_tick_worker_menu(
    tg: Telegram, client, db, net, settings, user: TgUser
) -> None:
    groups = make_groups(3)
    await allow(db, user)
    await log_in(tg, net, user, groups=groups)
    await tg.press(user, "add_all_groups:0")
    await tg.press(user, "send_message")
    await tg.send(user, "Fresh <b>bread</b> every morning")
    await tg.press(user, "set_interval:10")
    assert tg.screen(user).has("broadcast.started")

    response = await client.post("/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"})
    assert response.status_code == 200 and response.json()["enqueued"] == 1

    worker = spawn_worker(settings, burst=True)
    out, _ = await asyncio.to_thread(worker.communicate, timeout=120)
    assert worker.returncode == 0, out.decode()[-2000:]

    for group in groups:
        [posted] = await net.posted(group.chat_id)
        assert "Fresh" in posted.text and "bread" in posted.text
    cur = await db.execute("SELECT id FROM cycles WHERE owner_id = %(o)s", {"o": user.id})
    [(cycle_id,)] = await cur.fetchall()
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["status"], cycle["outcome"], cycle["sent"], cycle["failed"]) == ("done", "sent", 3, 0)
    assert cycle["lag_ms"] is not None

    await tg.send(user, "/start")
    screen = tg.screen(user)
    assert "menu.status_last_cycle" in screen.keys, screen.text


@pytest.mark.slow
async def test_worker_log_lines_carry_the_job_and_cycle_ids(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 3003, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    worker = spawn_worker(settings, burst=True, log_format="json")
    out, _ = await asyncio.to_thread(worker.communicate, timeout=120)
    assert worker.returncode == 0, out.decode()[-2000:]
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    [done] = [d for d in lines if d["logger"] == "jobs.send_batch" and d["msg"].startswith(f"cycle {cycle_id} attempt")]
    assert (done["job_id"], done["cycle_id"]) == (f"send-{cycle_id}-0", cycle_id)
    [taken] = [d for d in lines if d["logger"] == "worker.loop_worker" and d["msg"].endswith(f"send-{cycle_id}-0")]
    assert taken["job_id"] == f"send-{cycle_id}-0"
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]


async def test_rq_entry_point_reuses_one_context_per_process(db, net, settings, pool, botapi) -> None:
    """`send_batch` (what RQ calls) runs on the process's runtime: the second job finds the pool,
    Redis and clients the first one opened."""
    from jobs.send_batch import send_batch
    from worker import context

    b = await make_broadcaster(db, net, settings, 3002, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids

    def two_jobs() -> tuple[str, str, bool]:
        context.use_settings(settings)
        try:
            first = send_batch(cycle_id)
            opened = context.runtime()._context
            second = send_batch(cycle_id)
            return first, second, opened is context.runtime()._context and opened is not None
        finally:
            context.close_runtime()
            context.use_settings(None)

    first, second, same = await asyncio.to_thread(two_jobs)
    assert (first, second, same) == ("finished", "inactive", True)
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]
