"""The announcement job against the fake Bot API: rate bound, 429, blocked users, progress, report,
resume. Rates are measured from the fake's recorded call times, never from the test's own clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.logs import RedactingFilter
from core.settings import Settings
from db import announcements, users
from db.rows import Announcement
from jobs.announce import Pacer, announce, deliver, run_announcement
from services.metrics import Metrics
from tests.conftest import ADMIN_ID, BOT_TOKEN
from tests.harness import message_keys
from tests.runtime_helpers import run_job
from worker import queues
from worker.botapi import BotApiClient
from worker.context import WorkerStop, WorkerStopping

RATE = 20


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"announce_rate": RATE}


@pytest.fixture
async def client(settings: Settings, botapi) -> AsyncIterator[BotApiClient]:
    async with BotApiClient(BOT_TOKEN, settings.bot_api_base) as c:
        yield c


async def _setup(db, botapi, n: int, *, base: int = 1000) -> int:
    for i in range(n):
        await users.set_access(db, base + i, status="active", expires_at=None)
    await users.set_access(db, 5, status="pending", expires_at=datetime.now(UTC))  # not in the audience
    await users.set_access(db, 6, status="banned", expires_at=None)
    source = botapi.add_message(ADMIN_ID, text="<b>News</b>", entities=[{"type": "bold", "offset": 0, "length": 4}])
    progress = botapi.add_message(ADMIN_ID, text="queued")
    ann = await announcements.create(db, admin_id=ADMIN_ID, from_chat_id=ADMIN_ID, source_message_id=source,
                                     total=n)
    await announcements.set_progress_message(db, ann.id, progress)
    botapi.clear_calls()
    return ann.id


async def _run(db, client: BotApiClient, settings: Settings, ann_id: int) -> Announcement:
    done = await deliver(db, client, settings, ann_id)
    assert done is not None
    return done


async def _get(db, ann_id: int) -> Announcement:
    row = await announcements.get(db, ann_id)
    assert row is not None
    return row


def _copies(botapi) -> list:
    return botapi.calls_of("copyMessage")


def _report_keys(botapi) -> set[str]:
    return message_keys(botapi.messages(ADMIN_ID)[-1].get("text", ""))


async def test_copies_to_every_allowed_user_within_the_rate_and_reports(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 15)
    done = await _run(db, client, settings, ann_id)
    copies = _copies(botapi)
    assert sorted(int(c.params["chat_id"]) for c in copies) == list(range(1000, 1015))
    assert all(int(c.params["from_chat_id"]) == ADMIN_ID for c in copies)
    times = [c.at for c in copies]
    assert (len(times) - 1) / (times[-1] - times[0]) <= RATE * 1.05
    # No bursts either: any 6 consecutive calls span at least 5 slots (less the network's jitter).
    assert min(b - a for a, b in zip(times, times[5:], strict=False)) >= 5 / RATE - 0.03
    assert (done.delivered, done.failed, done.blocked, done.status) == (15, 0, 0, "done")
    assert "admin.announce_report" in _report_keys(botapi)
    # the copy keeps the formatting of the source
    assert botapi.messages(1000)[-1]["entities"] == [{"type": "bold", "offset": 0, "length": 4}]


async def test_429_retry_after_is_honoured_and_the_user_still_gets_it(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 4)
    botapi.fail_next("copyMessage", error_code=429, retry_after=1, chat_id=1001)
    done = await _run(db, client, settings, ann_id)
    copies = _copies(botapi)
    to_1001 = [c for c in copies if int(c.params["chat_id"]) == 1001]
    assert len(to_1001) == 2  # refused once, then delivered
    after = [c for c in copies if c.at > to_1001[0].at]
    assert after and after[0].at - to_1001[0].at >= 1.0  # nothing at all was sent during the wait
    assert (done.delivered, done.failed) == (4, 0)


async def test_blocked_users_are_counted_not_retried(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 5)
    botapi.block_chat(1001)
    botapi.block_chat(1003)
    done = await _run(db, client, settings, ann_id)
    attempts = [int(c.params["chat_id"]) for c in _copies(botapi)]
    assert attempts.count(1001) == 1 and attempts.count(1003) == 1
    assert (done.delivered, done.failed, done.blocked) == (3, 2, 2)
    assert "delivered 3, failed 2 (blocked the bot: 2)" in botapi.messages(ADMIN_ID)[-1]["text"]


async def test_other_errors_count_as_failed(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 3)
    botapi.fail_next("copyMessage", error_code=400, description="Bad Request: chat not found", chat_id=1002)
    done = await _run(db, client, settings, ann_id)
    assert (done.delivered, done.failed, done.blocked) == (2, 1, 0)


async def test_progress_message_is_edited_with_sent_x_of_n(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 6)
    ann = await _get(db, ann_id)
    await deliver(db, client, settings, ann_id, progress_every=0.1)
    edits = [c for c in botapi.calls_of("editMessageText") if int(c.params["message_id"]) == ann.progress_message_id]
    assert len(edits) >= 2  # during the run and at the end
    assert all("admin.announce_progress" in message_keys(c.params["text"]) for c in edits)
    assert "sent 6 / 6" in edits[-1].params["text"]


async def test_resumes_after_the_last_user_and_a_finished_one_does_nothing(db, botapi, settings, client) -> None:
    ann_id = await _setup(db, botapi, 6)
    await announcements.start(db, ann_id, 6)
    await announcements.save_progress(db, ann_id, last_user_id=1002, delivered=3, failed=0, blocked=0)
    done = await _run(db, client, settings, ann_id)
    assert sorted(int(c.params["chat_id"]) for c in _copies(botapi)) == [1003, 1004, 1005]
    assert (done.delivered, done.total) == (6, 6)
    botapi.clear_calls()
    assert await deliver(db, client, settings, ann_id) is None
    assert _copies(botapi) == []


async def test_a_stopping_worker_ends_it_between_two_users_and_another_run_goes_on_once(
    db, botapi, settings, client
) -> None:
    ann_id = await _setup(db, botapi, 6)
    stop = WorkerStop()

    class StopAfterThree(WorkerStop):
        def allows_send(self) -> bool:  # the worker's shutdown begins once three users have it
            return len(_copies(botapi)) < 3

    with pytest.raises(WorkerStopping):
        await deliver(db, client, settings, ann_id, stop=StopAfterThree())
    assert len(_copies(botapi)) == 3 and (await _get(db, ann_id)).delivered == 3
    done = await deliver(db, client, settings, ann_id, stop=stop)  # put back, run elsewhere
    assert done is not None and (done.delivered, done.total) == (6, 6)
    assert sorted(int(c.params["chat_id"]) for c in _copies(botapi)) == [1000 + i for i in range(6)]


async def test_rq_entry_point_runs_the_whole_job_and_records_metrics(db, redis, botapi, settings) -> None:
    ann_id = await _setup(db, botapi, 2)
    botapi.block_chat(1001)
    result = await asyncio.to_thread(run_job, settings, run_announcement, ann_id)
    assert result == {"delivered": 1, "failed": 1, "blocked": 1}
    assert (await _get(db, ann_id)).status == "done"
    recorded = {dict(s.labels)["result"]: s.value
                for f in await Metrics(redis, settings.redis_prefix).collect()
                if f.spec.name == "tgcast_announcement_messages_total" for s in f.samples}
    assert recorded == {"delivered": 1, "failed": 0, "blocked": 1}


async def test_rq_entry_point_logs_with_the_job_id(db, botapi, settings) -> None:
    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []
            self.addFilter(RedactingFilter())  # what adds the bound ids to a record, as in production

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    ann_id = await _setup(db, botapi, 2)
    botapi.fail_next("copyMessage", error_code=400, description="Bad Request: chat not found", chat_id=1001)
    logger, collect = logging.getLogger("jobs.announce"), Collect()
    level = logger.level
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        await asyncio.to_thread(run_job, settings, run_announcement, ann_id)
    finally:
        logger.removeHandler(collect)
        logger.setLevel(level)
    assert any("1001" in r.getMessage() for r in collect.records)  # the failed copy was logged
    assert {getattr(r, "job_id", None) for r in collect.records} == {queues.announce_job_id(ann_id)}


async def test_the_job_runs_on_the_job_context_and_commits_durably(ctx, db, botapi, settings,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The announcement uses the job context's pool, Bot API client and Redis like the other jobs; its
    progress commits wait for the disk (a lost resume point would send the message again), and the
    pooled connection goes back with the pool's relaxed commits."""
    seen: list[str] = []
    save_progress = announcements.save_progress

    async def spy(conn, *args: Any, **kwargs: Any) -> None:
        cur = await conn.execute("SHOW synchronous_commit")
        row = await cur.fetchone()
        seen.append(row[0])
        await save_progress(conn, *args, **kwargs)

    monkeypatch.setattr(announcements, "save_progress", spy)
    ann_id = await _setup(db, botapi, 2)
    assert await announce(ctx, ann_id) == {"delivered": 2, "failed": 0, "blocked": 0}
    assert seen == ["on", "on"]
    async with ctx.pool.connection() as conn:
        cur = await conn.execute("SHOW synchronous_commit")
        assert await cur.fetchone() == ("off",)


async def test_pacer_spaces_calls_and_holds_after_a_429() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await pacer.wait()
    assert slept == pytest.approx([0.1, 0.1])
    pacer.hold(5)
    await pacer.wait()
    assert now[0] == pytest.approx(5.2)
