"""A warm shutdown ends within WORKER_SHUTDOWN_S (docs/worker.md, "Shutdown"): a real worker process
SIGTERMed while its batches are mid-way exits in time, having sent nothing twice and given back what
it had not sent, which another worker then sends. Platforms SIGKILL ~30 s after SIGTERM; a worker that
took longer would leave its batches' rows in flight until their leases expire."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.schedule import shutdown_plan
from jobs.tick import tick
from tests.runtime_helpers import make_broadcaster, spawn_worker

pytestmark = pytest.mark.slow

SHUTDOWN_S = 6
# Process exit, the interpreter's own teardown, a loaded CI box: what the bound does not cover.
SLACK_S = 3


async def statuses(db, cycle_ids: list[int]) -> list[str]:
    cur = await db.execute("SELECT status FROM deliveries WHERE cycle_id = ANY(%(ids)s)", {"ids": cycle_ids})
    return [row[0] for row in await cur.fetchall()]


async def stop_and_time(worker) -> tuple[float, str]:
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        out, _ = await asyncio.to_thread(worker.communicate, timeout=SHUTDOWN_S + 30)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    return time.monotonic() - started, out.decode()


async def rescue(db, pool, settings, cycle_ids: list[int]) -> None:
    """Another worker, with the cron ticking beside it, until every delivery is sent."""
    rescuer = spawn_worker(settings, burst=False)
    try:
        for i in range(1200):
            if set(await statuses(db, cycle_ids)) == {"sent"}:
                break
            if i % 40 == 39:
                await tick(pool, settings, datetime.now(UTC) + timedelta(seconds=10))
            await asyncio.sleep(0.05)
        _, out = await stop_and_time(rescuer)
    finally:
        if rescuer.poll() is None:
            os.kill(rescuer.pid, signal.SIGKILL)
    assert rescuer.returncode == 0, out[-3000:]


def test_the_plan_keeps_the_exit_reserve_and_lets_batches_send_for_a_while() -> None:
    plan = shutdown_plan(25, 20)
    assert (plan.send_s, plan.cancel_s) == (10, 20)  # the default: 5 s kept for the exit
    assert shutdown_plan(25, 2).send_s == 18  # a short request bound: sends go on until 2 s before the cancel
    for total in (2, 6, 25, 600):
        for request in (0.5, 20, 300):
            plan = shutdown_plan(total, request)
            assert 0 < plan.send_s < plan.cancel_s < total


async def test_sigterm_mid_batch_exits_within_the_bound_and_the_rest_is_sent_once_elsewhere(
    db, net, settings, pool, sync_redis
) -> None:
    people = [await make_broadcaster(db, net, settings, 5_100_000 + i, groups=5) for i in range(8)]
    cycle_ids = (await tick(pool, settings)).cycle_ids
    chats = [c for b in people for c in b.chat_ids]
    # 3 s between two sends of an account: a batch of 5 takes 12 s, far past the moment sends must stop.
    worker = spawn_worker(settings, burst=False, send_pause_min_ms=3000, send_pause_max_ms=3000,
                          worker_shutdown_s=SHUTDOWN_S)
    try:
        for _ in range(1200):  # every account's batch is mid-way: its first post out, the rest claimed
            if all([await net.posted(b.chat_ids[0]) for b in people]):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker never sent")
        took, out = await stop_and_time(worker)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, out[-3000:]
    assert took < SHUTDOWN_S + SLACK_S, (took, out[-3000:])
    rows = await statuses(db, cycle_ids)
    assert "in_flight" not in rows  # what was not sent was given back, not left to the leases
    assert "pending" in rows  # the shutdown did cut the batches short
    await rescue(db, pool, settings, cycle_ids)
    assert [len(await net.posted(c)) for c in chats] == [1] * len(chats)  # none twice, none lost


async def test_a_batch_stuck_in_a_hung_request_is_cancelled_put_back_and_sent_once(
    db, net, settings, pool, sync_redis
) -> None:
    b = await make_broadcaster(db, net, settings, 5_200_000, groups=3)
    cycle_ids = (await tick(pool, settings)).cycle_ids
    # Telegram takes the first post and never answers: only the shutdown's cancel ends the request
    # (REQUEST_TIMEOUT_S is far longer than the shutdown).
    await net.hang(b.tg_user_id, 120)
    worker = spawn_worker(settings, burst=False, request_timeout_s=120, worker_shutdown_s=SHUTDOWN_S)
    try:
        for _ in range(1200):
            if await net.send_attempts(b.tg_user_id):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker never sent")
        took, out = await stop_and_time(worker)
    finally:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
    assert worker.returncode == 0, out[-3000:]
    assert took < SHUTDOWN_S + SLACK_S, (took, out[-3000:])
    assert "put back" in out
    assert "in_flight" not in await statuses(db, cycle_ids)
    await net.unhang(b.tg_user_id)
    await rescue(db, pool, settings, cycle_ids)
    # The hung post reached Telegram; its resend carries the same random_id and is not posted again.
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1, 1]
