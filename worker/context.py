"""What a worker process opens once and every job reuses: settings, a psycopg pool, async Redis,
the account gateway with its cache of connected accounts, the Bot API client, the session box, and
the event loop ("the job loop") they all live on.

The job loop runs in a thread of its own for the whole life of the process. RQ job functions are plain
functions of ids (`loop_job`); the concurrent worker (worker/loop_worker.py) starts their async bodies as
tasks on this loop, hundreds at once, while anything else that calls them (RQ's own workers, a test)
waits for the one body it started. Either way connections survive from one job to the next. The one
runtime per process (per thread, for in-process test workers) is module state on purpose: RQ calls job
functions by name and gives them nothing else.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.settings import Settings, load_settings
from db.pool import open_pool
from userbot.claims import ConnectionClaims, state_loss_wait
from userbot.factory import build_gateway
from userbot.gateway import AccountGateway
from userbot.sender_cache import SenderCache
from worker.botapi import BotApiClient
from worker.own_queues import own_queue
from worker.queues import sync_redis
from worker.sent_records import SentRecorder, linger_for
from worker.task_dump import await_chain

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# Batches hold a connection for single statements only (never across a send or a pause), so a few
# connections serve hundreds of concurrent batches; several worker processes must also fit in
# PostgreSQL's default 100 connections beside the web replicas.
POOL_MAX = 8


def bot_api_client(settings: Settings) -> BotApiClient:
    return BotApiClient(settings.bot_token_value(), settings.bot_api_base, timeout=15)


class WorkerStopping(Exception):
    """A job body ended early because its worker is stopping, with its work left for another worker:
    the worker puts the job back on its queue instead of recording a failure."""


@dataclass(slots=True)
class WorkerStop:
    """A warm shutdown as the job loop's batches see it (docs/worker.md, "Shutdown"): no send starts
    at or after `send_until` (time.monotonic()); `changed` wakes the batches waiting for a delivery's
    time, which then stop waiting when the stop comes first. Set on the job loop only."""

    send_until: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def allows_send(self) -> bool:
        return self.send_until is None or time.monotonic() < self.send_until

    def seconds_left(self) -> float | None:
        return None if self.send_until is None else self.send_until - time.monotonic()


@dataclass(slots=True)
class JobContext:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
    queue_redis: SyncRedis  # RQ is sync; used from a thread (asyncio.to_thread)
    gateway: AccountGateway
    botapi: BotApiClient
    box: SecretBox
    senders: SenderCache  # connected accounts, kept across batches
    sent_records: SentRecorder  # the process's batches' "sent" records, written together
    # This worker process's own broadcast queue (worker/own_queues.py), where its batches enqueue their
    # continuations; None outside a routing worker (the shared queue then).
    home_queue: str | None = None
    stop: WorkerStop = field(default_factory=WorkerStop)


async def open_context(settings: Settings, stack: AsyncExitStack) -> JobContext:
    pool = await open_pool(settings.database_url, min_size=1, max_size=POOL_MAX, relaxed_commit=True, check=False)
    stack.push_async_callback(pool.close)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    stack.push_async_callback(redis.aclose)
    queue_redis = sync_redis(settings)
    stack.callback(queue_redis.close)
    botapi = bot_api_client(settings)
    stack.push_async_callback(botapi.aclose)
    gateway = build_gateway(settings, redis)
    # Claims: one worker process at a time holds an account's connection open. Telegram ends a session
    # used from two places at once (AUTH_KEY_DUPLICATED), and replicas may run on different machines.
    claims = ConnectionClaims(redis, settings.redis_prefix,
                              state_loss_wait_s=state_loss_wait(settings.claim_state_loss_wait_s))
    senders = SenderCache(gateway, idle_s=settings.client_idle_s, max_open=settings.client_max, claims=claims)
    senders.start()
    stack.push_async_callback(senders.close_all)  # closed first: before the Redis the emulator uses
    sent_records = SentRecorder(pool, linger_s=linger_for(settings.send_pause_min_ms))
    stack.push_async_callback(sent_records.close)  # before the pool it writes through
    return JobContext(settings, pool, redis, queue_redis, gateway, botapi, SecretBox(settings.session_keys),
                      senders, sent_records, home_queue=own_queue(settings, claims.owner))


class ProcessRuntime:
    """The job loop (in its own thread) and the one `JobContext` on it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        # Started by the first job (`submit`), not here: a runtime that never runs a job starts no thread.
        self._thread = threading.Thread(target=self._loop.run_forever, name="job-loop", daemon=True)
        self._stack = AsyncExitStack()
        self._context: JobContext | None = None
        self._opening: asyncio.Lock | None = None
        self._pinged_at: float | None = None  # the main thread's ping the loop has not answered yet
        self._send_until: float | None = None  # a warm shutdown's, for a context opened after it
        self._tasks: set[asyncio.Task[object]] = set()  # the submitted bodies still running

    def answers(self, within_s: float) -> bool:
        """Whether the job loop answers: False once the main thread's last ping has waited `within_s`
        unanswered (the loop is stalled: a blocking call, a frozen process). Sends a new ping when the
        last one was answered; cheap enough for every round of the main loop. A loop not started yet
        (no job so far) has nothing to stall."""
        if not self._thread.is_alive():
            return True
        pinged = self._pinged_at
        now = time.monotonic()
        if pinged is None:
            self._pinged_at = now
            self._loop.call_soon_threadsafe(self._pong)
            return True
        return now - pinged < within_s

    def _pong(self) -> None:
        self._pinged_at = None

    def submit(self, body: Callable[[JobContext], Awaitable[T]], name: str | None = None
               ) -> concurrent.futures.Future[T]:
        """Start `body` as a task on the job loop (named `name`, for `log_where`); thread-safe."""
        if not self._thread.is_alive() and not self._loop.is_closed():
            with _starting:
                if not self._thread.is_alive():
                    self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._with_context(body, name), self._loop)

    def run(self, body: Callable[[JobContext], Awaitable[T]]) -> T:
        """Run `body` on the job loop and wait for its result (callers outside the loop only)."""
        return self.submit(body).result()

    async def context(self) -> JobContext:
        if self._context is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:  # hundreds of first jobs at once open one context
                if self._context is None:
                    self._context = await open_context(self._settings or load_settings(), self._stack)
                    self._apply_stop()
        return self._context

    async def _with_context(self, body: Callable[[JobContext], Awaitable[T]], name: str | None = None) -> T:
        task = asyncio.current_task()
        assert task is not None
        if name is not None:
            task.set_name(name)
        self._tasks.add(task)
        try:
            return await body(await self.context())
        finally:
            self._tasks.discard(task)

    def log_where(self, name: str, note: str) -> None:
        """Log, as a warning starting with `note`, where the running body named `name` waits (its
        await chain, worker/task_dump.py). Thread-safe; does not wait for the job loop."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._log_where, name, note)

    def _log_where(self, name: str, note: str) -> None:
        for task in self._tasks:
            if task.get_name() == name:
                log.warning("%s; waiting at:\n  %s", note, "\n  ".join(await_chain(task)))
                return

    def stop_sending(self, send_until: float) -> None:
        """A warm shutdown began: no send starts at or after `send_until` (time.monotonic()).
        Thread-safe."""
        self._send_until = send_until
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._apply_stop)

    def _apply_stop(self) -> None:
        if self._context is not None and self._send_until is not None:
            self._context.stop.send_until = self._send_until
            self._context.stop.changed.set()

    def cancel_all(self) -> None:
        """Cancel every body still running (a warm shutdown's deadline): each one's own cleanup
        (`finally`) runs, and its future ends cancelled once that is done. Thread-safe."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: [task.cancel() for task in list(self._tasks)])

    def close(self, timeout: float = 60) -> None:
        """Close the context (account connections first, then the pool) within `timeout` seconds;
        past that the process goes on without waiting (a warm shutdown's deadline): what was not
        closed ends with the process."""
        if self._loop.is_closed():
            return
        if self._context is not None:
            closing = asyncio.run_coroutine_threadsafe(self._stack.aclose(), self._loop)
            try:
                closing.result(timeout=timeout)
            except concurrent.futures.TimeoutError:
                log.warning("closing the job loop's connections took over %.0f s; leaving them", timeout)
                return
            self._context = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()


_starting = threading.Lock()
_local = threading.local()
_default_settings: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Settings for runtimes created from now on (tests; the worker command loads them from env)."""
    global _default_settings
    _default_settings = settings


def runtime() -> ProcessRuntime:
    current: ProcessRuntime | None = getattr(_local, "runtime", None)
    if current is None:
        current = ProcessRuntime(_default_settings)
        _local.runtime = current
    return current


def close_runtime(timeout: float = 60) -> None:
    current: ProcessRuntime | None = getattr(_local, "runtime", None)
    if current is not None:
        current.close(timeout)
        _local.runtime = None


def loop_job(body: Callable[Concatenate[JobContext, P], Awaitable[T]]) -> Callable[P, T]:
    """Makes an RQ job function (a plain function of ids, importable by name) of an async body that
    takes the process's `JobContext` first. Called as a function, it runs the body on the job loop and
    waits; the concurrent worker finds the body as `.loop_body` and starts it as a task instead."""

    @functools.wraps(body)
    def job(*args: P.args, **kwargs: P.kwargs) -> T:
        return runtime().run(lambda ctx: body(ctx, *args, **kwargs))

    job.loop_body = body  # type: ignore[attr-defined]
    return job
