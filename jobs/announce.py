"""The announcement job: copy the admin's message to every allowed user within the bot's limits.

`copyMessage` keeps the text, media and formatting exactly. Sends are spaced to at most
`ANNOUNCE_RATE` per second; a 429 is waited out (`retry_after`) and the same user retried; a 403
(the user blocked the bot) is counted and never retried. The resume point and counters are saved
after every user, so a job restarted after a crash carries on where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg import AsyncConnection

from core.i18n import Translator, person_language
from core.logs import bind
from core.settings import Settings
from db import announcements, users
from db.pool import durable_commits
from db.rows import Announcement
from services.metrics import Metrics
from worker import queues
from worker.botapi import BotApiClient, BotApiError
from worker.context import JobContext, WorkerStop, WorkerStopping, loop_job

log = logging.getLogger(__name__)

CHUNK = 200
MAX_429_WAITS = 5  # per user: Telegram asking again and again means something else is wrong
PROGRESS_EVERY_S = 3.0


@loop_job
async def run_announcement(ctx: JobContext, announcement_id: int) -> dict[str, int]:
    """RQ entry point: `run_announcement(announcement_id)`, run on the process's job loop, in the
    announcement's slot of the worker (worker/process.py)."""
    return await announce(ctx, announcement_id)


async def announce(ctx: JobContext, announcement_id: int) -> dict[str, int]:
    """The whole announcement, on the job context's pool, Bot API client and Redis."""
    # Its job id follows from the announcement, so lines carry it whichever worker runs the job.
    with bind(job_id=queues.announce_job_id(announcement_id)):
        # One pooled connection for the run, its commits durable: the resume point is saved after every
        # user, and one lost in a crash of PostgreSQL would send the users after it the message again
        # (copyMessage has no de-duplication), where the pool's relaxed commits suit the send batches.
        async with ctx.pool.connection() as conn, durable_commits(conn):
            row = await deliver(conn, ctx.botapi, ctx.settings, announcement_id,
                                metrics=Metrics(ctx.redis, ctx.settings.redis_prefix), stop=ctx.stop)
    if row is None:
        return {}
    return {"delivered": row.delivered, "failed": row.failed, "blocked": row.blocked}


@dataclass(slots=True)
class Pacer:
    """Spaces calls to at most `rate` per second (a slot every 1/rate s, never bunched after a pause)."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    _next: float = 0.0

    async def wait(self) -> None:
        delay = self._next - self.clock()
        if delay > 0:
            await self.sleep(delay)
        self._next = max(self._next, self.clock()) + 1 / self.rate

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, self.clock() + seconds)


async def deliver(conn: AsyncConnection, botapi: BotApiClient, settings: Settings, announcement_id: int, *,
                  progress_every: float = PROGRESS_EVERY_S, metrics: Metrics | None = None,
                  stop: WorkerStop | None = None) -> Announcement | None:
    audience = await users.counts(conn)
    ann = await announcements.start(conn, announcement_id, audience.active)
    if ann is None:
        return None
    tr = await _admin_translator(conn, settings, ann.admin_id)
    pacer = Pacer(settings.announce_rate)
    delivered, failed, blocked, last = ann.delivered, ann.failed, ann.blocked, ann.last_user_id
    last_progress = time.monotonic()
    while ids := await users.allowed_ids_after(conn, last, CHUNK):
        for user_id in ids:
            if stop is not None and not stop.allows_send():
                # The worker is stopping (docs/worker.md, "Shutdown"): between two users, where the
                # resume point is saved, rather than cancelled in a send that may have reached the user.
                raise WorkerStopping(f"announcement {ann.id}: the worker stops; resumes after user {last}")
            outcome = await _send_one(botapi, pacer, ann, user_id)
            if outcome == "sent":
                delivered += 1
            else:
                failed += 1
                blocked += outcome == "blocked"
            last = user_id
            await announcements.save_progress(conn, ann.id, last_user_id=last, delivered=delivered, failed=failed,
                                              blocked=blocked)
            if time.monotonic() - last_progress >= progress_every:
                last_progress = time.monotonic()
                await _progress(botapi, ann, tr("admin.announce_progress", done=delivered + failed,
                                                total=max(ann.total, delivered + failed)))
    if metrics is not None:  # this run's share only: a resumed run does not count earlier users again
        async with metrics.pipeline() as m:
            m.inc("tgcast_announcement_messages_total", delivered - ann.delivered, result="delivered")
            m.inc("tgcast_announcement_messages_total", (failed - blocked) - (ann.failed - ann.blocked),
                  result="failed")
            m.inc("tgcast_announcement_messages_total", blocked - ann.blocked, result="blocked")
    done = await announcements.finish(conn, ann.id)
    if done is None:
        return await announcements.get(conn, ann.id)
    await _progress(botapi, done, tr("admin.announce_progress", done=delivered + failed,
                                     total=max(done.total, delivered + failed)))
    try:
        await botapi.send_message(done.admin_id, tr("admin.announce_report", delivered=done.delivered,
                                                    failed=done.failed, blocked=done.blocked))
    except BotApiError as exc:
        log.warning("announcement %s report not delivered: %s", done.id, exc.error_code)
    return done


async def _send_one(botapi: BotApiClient, pacer: Pacer, ann: Announcement, user_id: int) -> str:
    for _ in range(MAX_429_WAITS + 1):
        await pacer.wait()
        try:
            await botapi.copy_message(user_id, ann.from_chat_id, ann.source_message_id)
            return "sent"
        except BotApiError as exc:
            if exc.error_code == 429:
                # Telegram's wait applies to the whole bot: hold every later send, then retry this one.
                pacer.hold(float(exc.retry_after or 1))
                continue
            if exc.blocked:
                return "blocked"
            log.info("announcement %s to %s failed: %s", ann.id, user_id, exc.error_code)
            return "failed"
        except Exception as exc:  # network trouble: count it, keep going with the others
            log.warning("announcement %s to %s failed: %s", ann.id, user_id, type(exc).__name__)
            return "failed"
    return "failed"


async def _progress(botapi: BotApiClient, ann: Announcement, text: str) -> None:
    if ann.progress_message_id is None:
        return
    try:
        await botapi.edit_message_text(ann.admin_id, ann.progress_message_id, text)
    except BotApiError as exc:  # progress is cosmetic; the final report still comes
        log.info("announcement %s progress not shown: %s", ann.id, exc.error_code)


async def _admin_translator(conn: AsyncConnection, settings: Settings, admin_id: int) -> Translator:
    known = await users.language_of(conn, admin_id)  # a super admin may have no row
    return Translator(person_language(known, settings.default_language))
