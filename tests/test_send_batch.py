"""The send-batch job (docs/runtime.md, "Worker"), run in-process through its async body `run_batch`:
staleness, lock, flood deferral, micro-batch and leases, outcomes per delivery, continuation,
cycle summary, streaks, media reuse, notices."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from rq.registry import ScheduledJobRegistry

from core.crypto import SecretBox
from core.schedule import backoff_ms
from db import accounts, configs
from db.tick import release_expired_leases
from handlers.callbacks import Login
from jobs.send_batch import run_batch
from jobs.tick import tick
from services import broadcast
from tests.harness import message_keys
from tests.runtime_helpers import (
    Broadcaster,
    add_message,
    config_row,
    cycle_row,
    deliveries_of,
    make_broadcaster,
    make_due,
    utcnow,
)
from worker import queues


def scheduled(settings, sync_redis) -> dict[str, float]:
    registry = ScheduledJobRegistry(queue=queues.broadcast_queue(settings, sync_redis))
    return {job_id: registry.get_scheduled_time(job_id).timestamp() for job_id in registry.get_job_ids()}


def queued(settings, sync_redis) -> list[str]:
    return queues.broadcast_queue(settings, sync_redis).get_job_ids()


async def start_cycle(pool, settings) -> int:
    summary = await tick(pool, settings)
    assert len(summary.cycle_ids) == 1, summary
    return summary.cycle_ids[0]


async def total_posted(net, chat_ids) -> int:
    return sum([len(await net.posted(c)) for c in chat_ids])


def notice_keys(botapi, user_id: int) -> list[set[str]]:
    return [message_keys(m.get("text", "")) for m in botapi.messages(user_id)]


async def test_success_sends_once_per_group_and_stores_the_summary(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1001, groups=3)
    cycle_id = await start_cycle(pool, settings)
    before = utcnow()
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("finished", 3)
    rows = await deliveries_of(db, cycle_id)
    assert {r["status"] for r in rows} == {"sent"}
    assert all(r["sent_at"] >= before and r["tg_message_id"] for r in rows)
    for row in rows:
        [posted] = await net.posted(row["chat_id"])
        assert posted.random_id == row["random_id"] and posted.from_tg_user_id == b.tg_user_id
        assert posted.text == "Hello <b>groups</b>"
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["status"], cycle["outcome"], cycle["sent"], cycle["failed"], cycle["total"]) == (
        "done", "sent", 3, 0, 3)
    assert cycle["finished_at"] is not None and cycle["started_at"] is not None and cycle["lag_ms"] is not None
    assert cycle["lag_ms"] >= 0
    # a job for a finished cycle sends nothing more
    again = await run_batch(ctx, cycle_id)
    assert again.outcome == "inactive"
    assert await total_posted(net, b.chat_ids) == 3


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 2, "cont_delay_ms": 1500, "cont_jitter_ms": 1500}])
async def test_a_batch_that_leaves_work_schedules_a_continuation(db, net, settings, pool, ctx, sync_redis) -> None:
    await make_broadcaster(db, net, settings, 1002, groups=5)
    cycle_id = await start_cycle(pool, settings)
    queued(settings, sync_redis)
    before = utcnow().timestamp()
    result = await run_batch(ctx, cycle_id)
    after = utcnow().timestamp()
    assert (result.outcome, result.sent, result.continuation) == ("continued", 2, "ready")
    assert [r["status"] for r in await deliveries_of(db, cycle_id)] == ["sent"] * 2 + ["pending"] * 3
    jobs = scheduled(settings, sync_redis)
    assert result.job_id in jobs
    # CONT_DELAY_MS + up to CONT_JITTER_MS (RQ stores whole seconds)
    assert before + 1.5 - 1 <= jobs[result.job_id] <= after + 3.0
    assert (await cycle_row(db, cycle_id))["last_continuation"] == "ready"
    # the continuations carry the cycle to its end
    second = await run_batch(ctx, cycle_id)
    third = await run_batch(ctx, cycle_id)
    assert (second.outcome, third.outcome) == ("continued", "finished")
    assert (await cycle_row(db, cycle_id))["sent"] == 5


async def test_retriable_failure_returns_to_pending_with_backoff(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1003, groups=2)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "RPC_CALL_FAIL")
    before = utcnow()
    result = await run_batch(ctx, cycle_id)
    first, second = await deliveries_of(db, cycle_id)
    assert (first["status"], first["retry"]) == ("pending", 1)
    delay = backoff_ms(0, settings.retry_base_ms, settings.retry_max_ms, str(first["id"]))
    expected = before + timedelta(milliseconds=delay)
    assert expected <= first["next_attempt_at"] <= expected + timedelta(seconds=2)
    assert second["status"] == "sent"
    assert (result.outcome, result.continuation) == ("continued", "next_due")


async def test_exhausted_retries_fail_with_the_reason(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1004, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await db.execute("UPDATE deliveries SET retry = %(r)s", {"r": settings.max_retries})
    await net.fail_next(b.tg_user_id, "TIMEOUT")
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["reason"]) == ("failed", "retry_exhausted")
    cycle = await cycle_row(db, cycle_id)
    assert (result.outcome, cycle["outcome"], cycle["failed"], cycle["reasons"]) == (
        "finished", "failed", 1, {"retry_exhausted": 1})


async def test_non_retriable_failure_is_failed_and_the_cycle_partial(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1005, groups=3)
    await net.forbid(b.chat_ids[1], b.tg_user_id)
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    rows = await deliveries_of(db, cycle_id)
    assert [(r["status"], r["reason"]) for r in rows] == [("sent", None), ("failed", "forbidden"), ("sent", None)]
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["outcome"], cycle["sent"], cycle["failed"], cycle["reasons"]) == ("partial", 2, 1, {"forbidden": 1})


async def test_unknown_error_keeps_its_text(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1006, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "SOMETHING_ODD")
    await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["reason"]) == ("failed", "unknown") and "SOMETHING_ODD" in row["error"]


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 10}])
async def test_flood_wait_pauses_the_whole_account_until_it_ends(db, net, settings, pool, ctx, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 1007, groups=4)
    cycle_id = await start_cycle(pool, settings)
    await net.set_flood(b.tg_user_id, 30)
    before = utcnow()
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.continuation) == ("continued", "flood")
    assert len(await net.send_attempts(b.tg_user_id)) == 1  # the batch stopped at the first refusal
    cur = await db.execute("SELECT flood_until, pause_reason FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    flood_until, reason = await cur.fetchone()
    assert reason == "flood" and before + timedelta(seconds=30) <= flood_until <= utcnow() + timedelta(seconds=31)
    rows = await deliveries_of(db, cycle_id)
    assert {r["status"] for r in rows} == {"pending"} and {r["retry"] for r in rows} == {0}
    assert all(r["next_attempt_at"] >= flood_until for r in rows)
    assert min(scheduled(settings, sync_redis).values()) >= flood_until.timestamp() - 1
    # a job that wakes early sends nothing from that account and defers to the end of the pause
    early = await run_batch(ctx, cycle_id)
    assert (early.outcome, early.continuation) == ("deferred", "flood")
    assert len(await net.send_attempts(b.tg_user_id)) == 1
    # once the pause is over (simulated), everything goes out
    await db.execute("UPDATE accounts SET flood_until = now() - interval '1 second'")
    await db.execute("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
    await net.redis.delete(f"{net.p}flood:{b.tg_user_id}")
    done = await run_batch(ctx, cycle_id)
    assert (done.outcome, done.sent) == ("finished", 4)


async def test_tick_postpones_a_flooded_account(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 1008)
    until = utcnow() + timedelta(minutes=20)
    await db.execute("UPDATE accounts SET flood_until = %(t)s", {"t": until})
    summary = await tick(pool, settings)
    assert summary.skipped == {"flood_pause": 1}
    assert (await config_row(db, b.user_id))["next_run_at"] == until


async def test_long_flood_tells_the_user_once(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1009, groups=2, interval_minutes=5)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "FLOOD_WAIT_900")
    await run_batch(ctx, cycle_id)
    cur = await db.execute("SELECT flood_until FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    [until] = await cur.fetchone()
    await db.execute("UPDATE accounts SET flood_until = NULL")
    await db.execute("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
    await net.fail_next(b.tg_user_id, "FLOOD_WAIT_900")
    await run_batch(ctx, cycle_id)
    assert [k for k in notice_keys(botapi, b.user_id) if "notices.long_flood" in k] == [{"notices.long_flood"}]
    # The time the wait ends, as Telegram gave it, rather than a rounded duration.
    assert f"{until.astimezone(UTC):%H:%M} UTC" in botapi.messages(b.user_id)[0]["text"]


async def test_slowmode_waits_for_that_group_only(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1010, groups=2)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_20")
    before = utcnow()
    await run_batch(ctx, cycle_id)
    first, second = await deliveries_of(db, cycle_id)
    assert (first["status"], first["retry"]) == ("pending", 0)
    assert before + timedelta(seconds=20) <= first["next_attempt_at"] <= utcnow() + timedelta(seconds=20)
    assert second["status"] == "sent"


async def test_slowmode_longer_than_the_interval_fails_this_cycle(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1011, groups=1, interval_minutes=5)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_600")
    before = utcnow()
    await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["reason"]) == ("failed", "slowmode")
    # When the slow mode ends is kept, on the delivery and on the finished round (whose deliveries go).
    assert before + timedelta(seconds=600) <= row["wait_until"] <= utcnow() + timedelta(seconds=600)
    [failure] = (await cycle_row(db, cycle_id))["failures"]
    assert (failure["chat_id"], failure["reason"], failure["removed"]) == (b.chat_ids[0], "slowmode", False)
    assert datetime.fromisoformat(failure["until"]) == row["wait_until"]


@pytest.mark.parametrize("fault", ["connect", "send"])
async def test_revoked_session_stops_everything_and_tells_the_user(
    db, net, settings, pool, ctx, botapi, fault: str
) -> None:
    b = await make_broadcaster(db, net, settings, 1012, groups=3)
    cycle_id = await start_cycle(pool, settings)
    if fault == "connect":
        await net.revoke_sessions(b.tg_user_id)
    else:
        await net.fail_next(b.tg_user_id, "AUTH_KEY_UNREGISTERED")
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "no_account" and result.sent == 0
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"cancelled"}
    assert (await cycle_row(db, cycle_id))["status"] == "cancelled"
    assert (await config_row(db, b.user_id))["active"] is False
    cur = await db.execute("SELECT status FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    assert (await cur.fetchone())[0] == "revoked"
    assert notice_keys(botapi, b.user_id) == [{"notices.session_ended"}]
    [notice] = botapi.messages(b.user_id)
    assert [[k["callback_data"] for k in row] for row in notice["reply_markup"]["inline_keyboard"]] == [["login"]]
    assert Login.unpack("login") == Login()  # the id the bot's own factory reads
    assert await run_batch(ctx, cycle_id) is not None
    assert len(botapi.messages(b.user_id)) == 1


async def test_a_session_lost_again_after_a_new_login_is_told_again(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1019, groups=2)
    await net.fail_next(b.tg_user_id, "AUTH_KEY_UNREGISTERED")
    await run_batch(ctx, await start_cycle(pool, settings))
    assert notice_keys(botapi, b.user_id) == [{"notices.session_ended"}]
    # The user logs in again with the same Telegram account, and that session ends too within the week.
    await accounts.store(db, b.user_id, tg_user_id=b.tg_user_id, phone=b.phone,
                         session_enc=SecretBox(settings.session_keys).encrypt(b.session))
    await configs.activate(db, b.user_id, 10, utcnow())
    await make_due(db, b.user_id)
    await net.fail_next(b.tg_user_id, "AUTH_KEY_UNREGISTERED")
    assert (await run_batch(ctx, await start_cycle(pool, settings))).outcome == "no_account"
    assert notice_keys(botapi, b.user_id) == [{"notices.session_ended"}, {"notices.session_ended"}]


async def test_a_stale_batch_does_not_revoke_a_newer_login(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1020, groups=2)
    cur = await db.execute("SELECT login_id FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    [old_login] = await cur.fetchone()
    await accounts.store(db, b.user_id, tg_user_id=b.tg_user_id, phone=b.phone, session_enc=b"new")
    assert not await accounts.revoke(db, b.account_id, old_login)
    cur = await db.execute("SELECT status FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    assert (await cur.fetchone())[0] == "active"


async def test_peer_flood_pauses_the_account_and_tells_the_user(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1013, groups=2)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "PEER_FLOOD")
    await run_batch(ctx, cycle_id)
    cur = await db.execute("SELECT flood_until, pause_reason FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    until, reason = await cur.fetchone()
    assert reason == "peer_flood" and until >= utcnow() + timedelta(seconds=settings.account_pause_s - 5)
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"pending"}
    assert notice_keys(botapi, b.user_id) == [{"notices.account_paused"}]


async def test_bad_content_fails_and_tells_the_user_once_per_cycle(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1014, groups=3, text="x" * 5000)
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    assert {(r["status"], r["reason"]) for r in await deliveries_of(db, cycle_id)} == {("failed", "bad_content")}
    assert notice_keys(botapi, b.user_id) == [{"notices.bad_content"}]


async def test_lock_busy_re_enqueues_a_bounded_number_of_times(db, net, settings, pool, ctx, redis, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 1015, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await redis.set(queues.account_lock_key(settings, b.account_id), "someone-else", px=60_000)
    result = await run_batch(ctx, cycle_id, attempt=0)
    assert result.outcome == "lock_busy" and result.job_id is not None
    assert result.job_id in scheduled(settings, sync_redis)
    job = queues.broadcast_queue(settings, sync_redis).fetch_job(result.job_id)
    assert job is not None and job.args == (cycle_id, 1)
    last = await run_batch(ctx, cycle_id, attempt=settings.lock_busy_retries)
    assert last.outcome == "lock_busy" and last.job_id is None
    assert (await cycle_row(db, cycle_id))["lock_busy"] == 2
    assert await net.send_attempts(b.tg_user_id) == []
    # the lock of someone else is never released by us
    assert await redis.get(queues.account_lock_key(settings, b.account_id)) == b"someone-else"


@pytest.mark.parametrize("settings_overrides", [{"send_pause_min_ms": 50, "send_pause_max_ms": 50}])
async def test_concurrent_jobs_for_one_user_only_one_sends(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1016, groups=4)
    cycle_id = await start_cycle(pool, settings)
    results = await asyncio.gather(run_batch(ctx, cycle_id), run_batch(ctx, cycle_id))
    assert sorted(r.outcome for r in results) == ["finished", "lock_busy"]
    assert sum(r.sent for r in results) == 4
    for chat_id in b.chat_ids:
        assert len(await net.posted(chat_id)) == 1


async def test_a_job_that_wakes_after_a_stop_sends_nothing(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1017, groups=3)
    cycle_id = await start_cycle(pool, settings)
    await broadcast.stop(db, b.user_id)
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "inactive"
    assert await net.send_attempts(b.tg_user_id) == []
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"cancelled"}


@pytest.mark.parametrize("settings_overrides", [{"send_pause_min_ms": 300, "send_pause_max_ms": 300}])
async def test_stop_during_a_batch_stops_between_two_sends(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1018, groups=5)
    cycle_id = await start_cycle(pool, settings)

    async def stop_after_first_post() -> None:
        while not await net.posted(b.chat_ids[0]):  # noqa: ASYNC110  the emulator lives in Redis: poll it
            await asyncio.sleep(0.01)
        await broadcast.stop(db, b.user_id)

    result, _ = await asyncio.gather(run_batch(ctx, cycle_id), stop_after_first_post())
    assert result.outcome == "inactive"
    rows = await deliveries_of(db, cycle_id)
    sent = [r for r in rows if r["status"] == "sent"]
    assert 1 <= len(sent) < 5 and {r["status"] for r in rows} <= {"sent", "cancelled"}
    assert await total_posted(net, b.chat_ids) == len(sent)
    assert (await cycle_row(db, cycle_id))["finished_at"] is not None


async def test_expired_owner_job_stops_and_tells_once(db, net, settings, pool, ctx, botapi) -> None:
    b = await make_broadcaster(db, net, settings, 1019, groups=2, expires_at=utcnow() + timedelta(hours=1))
    cycle_id = await start_cycle(pool, settings)
    await db.execute("UPDATE bot_users SET expires_at = now() - interval '1 second' WHERE user_id = %(u)s",
                     {"u": b.user_id})
    assert (await run_batch(ctx, cycle_id)).outcome == "inactive"
    assert await net.send_attempts(b.tg_user_id) == []
    assert (await config_row(db, b.user_id))["active"] is False
    assert notice_keys(botapi, b.user_id) == [{"notices.expired"}]


async def test_missing_account_cancels_the_cycle(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1020, groups=2)
    cycle_id = await start_cycle(pool, settings)
    await db.execute("DELETE FROM accounts WHERE owner_id = %(o)s", {"o": b.user_id})
    assert (await run_batch(ctx, cycle_id)).outcome == "no_account"
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"cancelled"}


async def test_a_message_edited_after_the_cycle_started_applies_next_cycle(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1021, groups=1, text="version one")
    cycle_id = await start_cycle(pool, settings)
    await configs.set_message(db, b.user_id, await add_message(db, b.user_id, "version two"))
    await run_batch(ctx, cycle_id)
    assert [p.text for p in await net.posted(b.chat_ids[0])] == ["version one"]


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_media_is_uploaded_once_per_cycle(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1022, groups=3, media=b"\xff\xd8 fake jpeg", text="caption")
    cycle_id = await start_cycle(pool, settings)
    for _ in range(3):
        await run_batch(ctx, cycle_id)
    assert await net.upload_count(b.tg_user_id) == 1
    assert (await cycle_row(db, cycle_id))["media_handle"]
    for chat_id in b.chat_ids:
        assert [(p.kind, p.text) for p in await net.posted(chat_id)] == [("photo", "caption")]


async def test_three_failing_cycles_in_a_row_remove_the_group_and_tell_the_user(
    db, net, settings, pool, ctx, botapi
) -> None:
    b = await make_broadcaster(db, net, settings, 1023, groups=2)
    bad = b.chat_ids[1]
    await net.forbid(bad, b.tg_user_id)
    for n in range(3):
        cycle_id = await start_cycle(pool, settings)
        await run_batch(ctx, cycle_id)
        cur = await db.execute("SELECT fail_streak, selected FROM groups WHERE chat_id = %(c)s", {"c": bad})
        streak, selected = await cur.fetchone()
        assert (streak, selected) == ((n + 1, True) if n < 2 else (0, False))
        await make_due(db, b.user_id)
    cur = await db.execute("SELECT fail_streak FROM groups WHERE chat_id = %(c)s", {"c": b.chat_ids[0]})
    assert (await cur.fetchone())[0] == 0
    assert notice_keys(botapi, b.user_id) == [{"notices.group_removed", "notices.reason_forbidden"}]
    assert "Group 1 &lt;of 1023&gt;" in botapi.messages(b.user_id)[0]["text"]
    # the next cycle no longer targets it
    cycle_id = await start_cycle(pool, settings)
    assert [r["chat_id"] for r in await deliveries_of(db, cycle_id)] == [b.chat_ids[0]]


async def test_a_success_resets_the_streak(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1024, groups=1)
    await db.execute("UPDATE groups SET fail_streak = 2")
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    cur = await db.execute("SELECT fail_streak, selected FROM groups WHERE owner_id = %(o)s", {"o": b.user_id})
    assert await cur.fetchone() == (0, True)


async def test_outcomes_lag_and_flood_are_recorded_as_metrics(db, net, settings, pool, ctx, redis) -> None:
    b = await make_broadcaster(db, net, settings, 1025, groups=3)
    await net.forbid(b.chat_ids[2], b.tg_user_id)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "RPC_CALL_FAIL")
    await run_batch(ctx, cycle_id)
    prefix = f"{settings.redis_prefix}metrics:"
    recorded = await redis.hgetall(f"{prefix}tgcast_deliveries_total")
    assert recorded == {b'["retry", "transient"]': b"1", b'["sent", ""]': b"1", b'["failed", "forbidden"]': b"1"}
    lag = await redis.hgetall(f"{prefix}tgcast_cycle_start_lag_seconds")
    assert lag[b'["count"]'] == b"1"
    await db.execute("UPDATE deliveries SET next_attempt_at = now() - interval '1 second'")
    await net.fail_next(b.tg_user_id, "FLOOD_WAIT_7")
    await run_batch(ctx, cycle_id)
    assert await redis.hgetall(f"{prefix}tgcast_flood_wait_seconds_total") == {b"[]": b"7"}


async def test_a_stored_forum_topic_is_used(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1026, groups=2)
    await db.execute("UPDATE groups SET kind = 'forum', topic_id = 7 WHERE chat_id = %(c)s", {"c": b.chat_ids[0]})
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    assert [p.topic_id for p in await net.posted(b.chat_ids[0])] == [7]
    assert [p.topic_id for p in await net.posted(b.chat_ids[1])] == [None]


@pytest.mark.parametrize("settings_overrides", [{"claim_ahead_ms": 0, "batch_size": 4, "send_pause_min_ms": 150,
                                                 "send_pause_max_ms": 150, "lease_s": 120}])
async def test_a_batch_claims_what_falls_due_while_its_own_pacing_runs(db, net, settings, pool, ctx) -> None:
    """Deliveries spread by their groups' spacing over less than the batch's pacing (3 pauses of 150 ms)
    go in one batch, without a continuation; one due later than that is left for the next job."""
    b = await make_broadcaster(db, net, settings, 1901, groups=5)
    cycle_id = await start_cycle(pool, settings)
    now = utcnow()
    for position, offset_ms in enumerate([0, 100, 200, 400, 5000]):
        await db.execute(
            "UPDATE deliveries SET next_attempt_at = %(at)s WHERE cycle_id = %(c)s AND position = %(p)s",
            {"at": now + timedelta(milliseconds=offset_ms), "c": cycle_id, "p": position})
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("continued", 4)
    statuses = [r["status"] for r in await deliveries_of(db, cycle_id)]  # in position order
    assert statuses == ["sent"] * 4 + ["pending"]
    assert await total_posted(net, b.chat_ids) == 4


@pytest.mark.parametrize("settings_overrides", [{"request_timeout_s": 0.3}])
async def test_a_hung_request_times_out_and_its_retry_posts_nothing_twice(db, net, settings, pool, ctx) -> None:
    """The emulated Telegram takes the post but never answers; the request is bounded in time."""
    b = await make_broadcaster(db, net, settings, 1040, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await net.hang(b.tg_user_id, 60)
    await asyncio.wait_for(run_batch(ctx, cycle_id), 10)
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["retry"]) == ("pending", 1)  # a TIMEOUT: retried, its retry counted
    assert row["unsure_since"] is not None  # it may have been posted
    assert await total_posted(net, b.chat_ids) == 1  # the post reached Telegram; only the answer hung
    await net.unhang(b.tg_user_id)
    await db.execute("UPDATE deliveries SET next_attempt_at = now() WHERE id = %(id)s", {"id": row["id"]})
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (result.outcome, row["status"], await total_posted(net, b.chat_ids)) == ("finished", "sent", 1)


@pytest.mark.parametrize("settings_overrides", [{"lease_s": 4, "send_pause_min_ms": 2000, "send_pause_max_ms": 2000}])
async def test_a_batch_outliving_its_lease_gives_the_rest_back_unsent(db, net, settings, pool, ctx) -> None:
    """with a 4 s lease and 2 s between sends, the third send would come after the
    lease ran out (when the tick may have handed the row to another job): it is given back instead."""
    b = await make_broadcaster(db, net, settings, 1041, groups=3)
    cycle_id = await start_cycle(pool, settings)
    result = await run_batch(ctx, cycle_id)
    rows = await deliveries_of(db, cycle_id)  # in position order
    assert [(r["status"], r["retry"]) for r in rows] == [("sent", 0), ("sent", 0), ("pending", 0)]
    assert (result.outcome, result.sent, await total_posted(net, b.chat_ids)) == ("continued", 2, 2)


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_a_finished_cycle_leaves_no_continuation_counter(db, net, settings, pool, ctx, redis) -> None:
    """`cycle-cont:<id>` goes with the cycle, not 8 days later."""
    await make_broadcaster(db, net, settings, 1042, groups=2)
    cycle_id = await start_cycle(pool, settings)
    key = queues.cont_step_key(settings, cycle_id)
    assert (await run_batch(ctx, cycle_id)).outcome == "continued"
    assert await redis.exists(key) == 1
    assert (await run_batch(ctx, cycle_id)).outcome == "finished"
    assert await redis.exists(key) == 0


async def _hung_send(db, net, settings, pool, ctx, user_id: int) -> tuple[Broadcaster, int, dict]:
    """A cycle whose one post reached "Telegram" and was never answered (a TIMEOUT), then the answer
    is given up on: the row is pending again, `unsure_since` set."""
    b = await make_broadcaster(db, net, settings, user_id, groups=1)
    cycle_id = await start_cycle(pool, settings)
    before = utcnow()
    await net.hang(b.tg_user_id, 60)
    await asyncio.wait_for(run_batch(ctx, cycle_id), 10)
    await net.unhang(b.tg_user_id)
    [row] = await deliveries_of(db, cycle_id)
    assert row["status"] == "pending" and before <= row["unsure_since"] <= utcnow()
    assert await total_posted(net, b.chat_ids) == 1
    return b, cycle_id, row


_FORGETFUL = {"request_timeout_s": 0.3, "random_id_trust_s": 0, "fake_random_id_ttl_s": 1}


@pytest.mark.parametrize("settings_overrides", [_FORGETFUL])
async def test_an_unanswered_post_past_the_random_id_trust_is_found_in_the_history_not_posted_again(
    db, net, settings, pool, ctx
) -> None:
    """Telegram has forgotten the random_id by the retry (the emulator after 1 s): sending it again would
    post it twice. The group's history shows the post, so it is recorded sent with that message."""
    b, cycle_id, row = await _hung_send(db, net, settings, pool, ctx, 1043)
    await asyncio.sleep(1.1)
    await db.execute("UPDATE deliveries SET next_attempt_at = now() WHERE id = %(id)s", {"id": row["id"]})
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    [posted] = await net.posted(b.chat_ids[0])
    assert (result.outcome, row["status"], row["tg_message_id"]) == ("finished", "sent", posted.message_id)


@pytest.mark.parametrize("settings_overrides", [_FORGETFUL])
async def test_an_unanswered_send_the_history_shows_was_not_posted_is_sent(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 1044, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "TIMEOUT")  # no answer, and (as it turns out) no post
    await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert row["status"] == "pending" and row["unsure_since"] is not None
    assert await total_posted(net, b.chat_ids) == 0
    await db.execute("UPDATE deliveries SET next_attempt_at = now() WHERE id = %(id)s", {"id": row["id"]})
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    [posted] = await net.posted(b.chat_ids[0])
    assert (result.outcome, row["status"], row["tg_message_id"]) == ("finished", "sent", posted.message_id)
    assert posted.random_id == row["random_id"]


@pytest.mark.parametrize("settings_overrides", [{"random_id_trust_s": 0}])
async def test_an_unanswered_post_the_history_cannot_tell_about_fails_as_outcome_unknown(
    db, net, settings, pool, ctx
) -> None:
    """An earlier attempt may have been posted (its answer never came), and a page of other members'
    messages since: the history does not reach back to the attempt, and sending again could post
    twice, so the delivery fails with its own reason and nothing is sent."""
    b = await make_broadcaster(db, net, settings, 1045, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await db.execute("UPDATE deliveries SET unsure_since = now() - interval '5 seconds' WHERE cycle_id = %(c)s",
                     {"c": cycle_id})
    for n in range(100):
        await net.post_as(b.chat_ids[0], 555, f"chatter {n}")
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    ours = [m for m in await net.posted(b.chat_ids[0]) if m.from_tg_user_id == b.tg_user_id]
    assert (result.outcome, row["status"], row["reason"], len(ours)) == ("finished", "failed", "outcome_unknown", 0)


@pytest.mark.parametrize("settings_overrides", [{"random_id_trust_s": 0, "fake_random_id_ttl_s": 1}])
async def test_a_batch_cancelled_mid_request_gives_its_row_back_as_unsure(db, net, settings, pool, ctx) -> None:
    """Its job's timeout or a stopping worker's deadline cancels the batch while a post's answer is
    awaited: the row goes back to pending, marked as possibly posted, and is not posted twice."""
    b = await make_broadcaster(db, net, settings, 1046, groups=1)
    cycle_id = await start_cycle(pool, settings)
    await net.hang(b.tg_user_id, 60)
    batch = asyncio.create_task(run_batch(ctx, cycle_id))
    while await total_posted(net, b.chat_ids) == 0:  # noqa: ASYNC110 (the post lands in Redis)
        await asyncio.sleep(0.02)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    await net.unhang(b.tg_user_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["retry"]) == ("pending", 0) and row["unsure_since"] is not None
    await asyncio.sleep(1.1)
    result = await run_batch(ctx, cycle_id)
    [row] = await deliveries_of(db, cycle_id)
    assert (result.outcome, row["status"], await total_posted(net, b.chat_ids)) == ("finished", "sent", 1)


async def test_a_lease_run_out_marks_the_row_unsure_from_its_claim(db, net, settings, pool) -> None:
    """A job that died holding rows may have posted any of them since it claimed them."""
    await make_broadcaster(db, net, settings, 1047, groups=2)
    cycle_id = await start_cycle(pool, settings)
    claimed_at = utcnow() - timedelta(minutes=5)
    earlier = claimed_at - timedelta(minutes=1)
    first, second = await deliveries_of(db, cycle_id)
    await db.execute(
        "UPDATE deliveries SET status = 'in_flight', lease_until = %(past)s, updated_at = %(at)s "
        "WHERE cycle_id = %(c)s",
        {"past": utcnow() - timedelta(seconds=1), "at": claimed_at, "c": cycle_id})
    await db.execute("UPDATE deliveries SET unsure_since = %(e)s WHERE id = %(id)s", {"e": earlier, "id": second["id"]})
    async with pool.connection() as conn:
        await release_expired_leases(conn, utcnow())
    first, second = await deliveries_of(db, cycle_id)
    assert (first["status"], first["unsure_since"]) == ("pending", claimed_at)
    assert (second["status"], second["unsure_since"]) == ("pending", earlier)  # the earliest is kept
