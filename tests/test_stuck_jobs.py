"""A job that stops moving is reported with where it waits, long before its timeout (worker/task_dump.py,
worker/loop_worker.py `stuck_after`): the await chain of a suspended task, through coroutines, an async
context manager's exit and another task, with no local values in it; and an in-process worker that reports
a job of a watched pool once it has run past its limit, and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from redis import Redis as SyncRedis
from rq import Queue

from core.schedule import batch_overdue_s
from core.settings import Settings
from worker import loop_worker, queues
from worker.context import JobContext, ProcessRuntime, loop_job
from worker.loop_worker import LoopWorker
from worker.task_dump import await_chain

SECRET = "1BVtsOK8Bu-a-session-string"


async def _innermost(gate: asyncio.Event) -> None:
    await gate.wait()


@contextlib.asynccontextmanager
async def _holding(gate: asyncio.Event) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await _innermost(gate)


async def _stuck_in_exit(gate: asyncio.Event) -> None:
    session = SECRET  # a local value that must never be shown
    async with _holding(gate):
        assert session


async def _waits_on_another_task(gate: asyncio.Event) -> None:
    other = asyncio.create_task(_innermost(gate), name="the-other-one")
    await other


async def _chain_while_waiting(waiter: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> list[str]:
    """The await chain of a task running `waiter` while it waits on its gate; the gate is opened after."""
    gate = asyncio.Event()
    task = asyncio.create_task(waiter(gate))
    for _ in range(3):
        await asyncio.sleep(0)
    chain = await_chain(task)
    gate.set()
    await task
    return chain


async def test_the_chain_runs_through_coroutines_and_an_async_context_managers_exit() -> None:
    chain = await _chain_while_waiting(_stuck_in_exit)
    names = [line.rpartition(" in ")[2] for line in chain[:-1]]
    assert names == ["_stuck_in_exit", "__aexit__", "_holding", "_innermost", "wait"]
    assert chain[-1].startswith("awaiting <Future pending")
    assert SECRET not in "\n".join(chain)


async def test_the_chain_ends_at_the_task_awaited_with_its_own_location() -> None:
    chain = await _chain_while_waiting(_waits_on_another_task)
    assert chain[0].endswith(" in _waits_on_another_task")
    assert "the-other-one" in chain[-1] and "_innermost" in chain[-1]


def test_a_batch_is_overdue_at_twice_its_lease_and_never_under_a_minute() -> None:
    assert batch_overdue_s(120) == 240
    assert batch_overdue_s(5) == 60


@loop_job
async def lingering(ctx: JobContext, seconds: float) -> str:
    """A job of the in-process worker below: waits `seconds` in a coroutine of its own."""
    await _lingering_wait(seconds)
    return "done"


async def _lingering_wait(seconds: float) -> None:
    await asyncio.sleep(seconds)


@pytest.mark.slow
def test_a_job_past_its_pools_limit_is_reported_once_with_where_it_waits(
    settings: Settings, sync_redis: SyncRedis, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop_worker, "HEARTBEAT_EVERY_S", 0.1)
    watched = queues.broadcast_queue(settings, sync_redis)
    unwatched = Queue(f"{settings.redis_prefix}unwatched", connection=sync_redis)
    slow = watched.enqueue(lingering, 2.0)
    quick = watched.enqueue(lingering, 0.0)
    elsewhere = unwatched.enqueue(lingering, 2.0)
    runtime = ProcessRuntime(settings)
    worker = LoopWorker([watched, unwatched], connection=sync_redis, limits={watched.name: 4, unwatched.name: 1},
                        stuck_after={watched.name: 0.5}, runtime=runtime)
    caplog.set_level(logging.WARNING, logger="worker.context")
    try:
        worker.work(burst=True)
    finally:
        runtime.close()
    reports = [r.getMessage() for r in caplog.records if "still running after" in r.getMessage()]
    assert len(reports) == 1, reports
    [report] = reports
    assert f"job {slow.id} " in report
    assert "_lingering_wait" in report  # where it waits, not only the job's wrapper
    assert quick.id not in report and elsewhere.id not in report
    assert slow.get_status() == quick.get_status() == elsewhere.get_status() == "finished"
