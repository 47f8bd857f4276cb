"""The tick (`jobs.tick.tick`, POST /tick, `tgcast tick`): due window and cap, skip
reasons, one cycle at a time, interval lower bound, deterministic jitter, idempotent enqueue,
recovery, pruning, and the configs_due index."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from core.schedule import cycle_jitter_ms
from jobs.tick import SLICES_AT_ONCE, tick
from tests.conftest import TICK_TOKEN
from tests.runtime_helpers import config_row, cycle_row, deliveries_of, make_broadcaster, make_due, utcnow
from worker import queues


def queue(settings, sync_redis) -> Queue:
    return queues.broadcast_queue(settings, sync_redis)


def all_job_ids(settings, sync_redis) -> set[str]:
    q = queue(settings, sync_redis)
    return set(q.get_job_ids()) | set(ScheduledJobRegistry(queue=q).get_job_ids())


async def test_due_config_gets_a_cycle_deliveries_and_a_job(db, net, settings, pool, sync_redis) -> None:
    b = await make_broadcaster(db, net, settings, 101, groups=3, interval_minutes=10)
    before = await config_row(db, b.user_id)
    now = utcnow()
    summary = await tick(pool, settings, now)
    assert summary.enqueued == 1 and summary.skipped == {}
    [cycle_id] = summary.cycle_ids
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["owner_id"], cycle["seq"], cycle["status"], cycle["total"]) == (b.user_id, 1, "running", 3)
    assert cycle["message_id"] == b.message_id
    assert cycle["scheduled_at"] == before["next_run_at"]
    rows = await deliveries_of(db, cycle_id)
    assert [r["chat_id"] for r in rows] == b.chat_ids  # deterministic order: as the groups were added
    assert {r["status"] for r in rows} == {"pending"}
    assert len({r["random_id"] for r in rows}) == 3
    after = await config_row(db, b.user_id)
    assert after["cycle"] == 1
    assert after["last_scheduled_at"] == before["next_run_at"]
    assert after["next_run_at"] == before["next_run_at"] + timedelta(minutes=10)
    assert all_job_ids(settings, sync_redis) == {f"send-{cycle_id}-0"}
    job = Job.fetch(f"send-{cycle_id}-0", connection=sync_redis)
    assert job.func_name == "jobs.send_batch.send_batch" and job.args == (cycle_id, 0)


async def test_not_due_and_inactive_configs_are_left_alone(db, net, settings, pool, sync_redis) -> None:
    await make_broadcaster(db, net, settings, 102, first_run_at=utcnow() + timedelta(minutes=5))
    await make_broadcaster(db, net, settings, 103, active=False)
    summary = await tick(pool, settings)
    assert (summary.enqueued, summary.skipped) == (0, {})
    assert all_job_ids(settings, sync_redis) == set()


async def test_due_window_starts_cycles_due_within_it_at_their_own_time(db, net, settings, pool, sync_redis) -> None:
    at = utcnow() + timedelta(seconds=40)
    b = await make_broadcaster(db, net, settings, 104, first_run_at=at)
    summary = await tick(pool, settings)
    assert summary.enqueued == 1
    cycle = await cycle_row(db, summary.cycle_ids[0])
    assert cycle["scheduled_at"] == at and cycle["run_at"] == at
    registry = ScheduledJobRegistry(queue=queue(settings, sync_redis))
    assert registry.get_job_ids() == [f"send-{summary.cycle_ids[0]}-0"]
    scheduled = registry.get_scheduled_time(f"send-{summary.cycle_ids[0]}-0")
    assert abs((scheduled - at).total_seconds()) < 1
    assert (await config_row(db, b.user_id))["next_run_at"] == at + timedelta(minutes=10)


@pytest.mark.parametrize("settings_overrides", [{"tick_cap": 3}])
async def test_one_tick_drains_what_is_due_in_slices_of_the_cap(db, net, settings, pool) -> None:
    # TICK_CAP bounds one transaction, not a tick: 5 due with a cap of 3 all start in one tick (two
    # slices), oldest due first, so a once-a-minute cron keeps up whatever is due per minute.
    for n in range(5):
        await make_broadcaster(db, net, settings, 200 + n, groups=1,
                               first_run_at=utcnow() - timedelta(minutes=5 - n))
    first = await tick(pool, settings)
    second = await tick(pool, settings)
    assert (first.enqueued, second.enqueued) == (5, 0)
    # Two slices run at once, so the cycles of the second may be created first: which configs, not in
    # which order.
    owners = [(await cycle_row(db, c))["owner_id"] for c in first.cycle_ids]
    assert sorted(owners) == [200, 201, 202, 203, 204]


@pytest.mark.parametrize("settings_overrides", [{"tick_cap": 2}])
async def test_slices_at_once_start_each_due_config_once_and_count_every_enqueue(db, net, settings, pool) -> None:
    # Two slices of one tick run concurrently (jobs/tick.py, SLICES_AT_ONCE): SKIP LOCKED must give them
    # disjoint configs, and the summary must add both slices' enqueues (each is awaited in a thread).
    assert SLICES_AT_ONCE == 2
    for n in range(9):
        await make_broadcaster(db, net, settings, 250 + n, groups=2,
                               first_run_at=utcnow() - timedelta(minutes=9 - n))
    summary = await tick(pool, settings)
    owners = [(await cycle_row(db, c))["owner_id"] for c in summary.cycle_ids]
    assert sorted(owners) == list(range(250, 259))
    assert summary.enqueued == 9 and len(set(summary.cycle_ids)) == 9
    counts = await db.execute("SELECT owner_id, count(*) FROM cycles GROUP BY owner_id HAVING count(*) <> 1")
    assert await counts.fetchall() == []
    rows = await db.execute("SELECT count(*) FROM deliveries WHERE cycle_id = ANY(%(ids)s)", {"ids": summary.cycle_ids})
    assert await rows.fetchone() == (18,)


@pytest.mark.parametrize("settings_overrides", [{"tick_cap": 1}])
async def test_a_config_skipped_but_still_due_is_not_taken_again_by_the_same_tick(db, net, settings, pool) -> None:
    # A flood pause ending within the due window leaves the config due: the next slice must move on to
    # the others rather than take it again (and the tick must end).
    now = utcnow()
    flooded = await make_broadcaster(db, net, settings, 230, groups=1, first_run_at=now - timedelta(minutes=2))
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE owner_id = %(o)s",
                     {"t": now + timedelta(seconds=20), "o": flooded.user_id})
    await make_broadcaster(db, net, settings, 231, groups=1, first_run_at=now - timedelta(minutes=1))
    summary = await tick(pool, settings, now)
    assert summary.skipped == {"flood_pause": 1} and summary.enqueued == 1
    assert [(await cycle_row(db, c))["owner_id"] for c in summary.cycle_ids] == [231]


@pytest.mark.parametrize("settings_overrides", [{"jitter_max_ms": 15000}])
async def test_many_users_due_together_get_spread_deterministic_jitter(db, net, settings, pool) -> None:
    at = utcnow() + timedelta(seconds=30)
    ids = list(range(300, 340))
    for uid in ids:
        await make_broadcaster(db, net, settings, uid, groups=1, first_run_at=at)
    summary = await tick(pool, settings)
    assert summary.enqueued == len(ids)
    offsets = {}
    for cycle_id in summary.cycle_ids:
        cycle = await cycle_row(db, cycle_id)
        offsets[cycle["owner_id"]] = (cycle["run_at"] - cycle["scheduled_at"]) / timedelta(milliseconds=1)
    assert offsets == {uid: cycle_jitter_ms(uid, 1, 15000) for uid in ids}
    assert all(0 <= v <= 15000 for v in offsets.values())
    assert len(set(offsets.values())) == len(ids)
    assert max(offsets.values()) - min(offsets.values()) > 7500


async def test_repeated_enqueue_of_a_cycle_is_a_no_op(db, net, settings, pool, sync_redis) -> None:
    await make_broadcaster(db, net, settings, 105)
    summary = await tick(pool, settings)
    [cycle_id] = summary.cycle_ids
    assert queues.enqueue_send(settings, sync_redis, cycle_id, utcnow(), tag="0") is None
    assert len(queue(settings, sync_redis).get_job_ids()) == 1


async def test_concurrent_ticks_never_start_a_config_twice(db, net, settings, pool, sync_redis) -> None:
    for n in range(20):
        await make_broadcaster(db, net, settings, 400 + n, groups=1)
    results = await asyncio.gather(*(tick(pool, settings) for _ in range(4)))
    assert sum(r.enqueued for r in results) == 20
    cur = await db.execute("SELECT owner_id, count(*) FROM cycles GROUP BY owner_id")
    assert {row[1] for row in await cur.fetchall()} == {1}
    assert len(all_job_ids(settings, sync_redis)) == 20


async def test_previous_cycle_running_is_skipped_and_pushed_by_an_interval(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 106, interval_minutes=5)
    await tick(pool, settings)
    await make_due(db, b.user_id)
    now = utcnow()
    summary = await tick(pool, settings, now)
    assert summary.enqueued == 0 and summary.skipped == {"previous_cycle_running": 1}
    assert (await config_row(db, b.user_id))["next_run_at"] == now + timedelta(minutes=5)
    cur = await db.execute("SELECT count(*) FROM cycles WHERE owner_id = %(o)s", {"o": b.user_id})
    assert (await cur.fetchone())[0] == 1


async def test_no_cycle_starts_before_its_interval(db, net, settings, pool) -> None:
    """Ticks every simulated 30 s for an hour: cycles of a 10-minute config start exactly 10 min apart
    (cycles are finished in between so nothing else holds them back)."""
    start = utcnow()
    b = await make_broadcaster(db, net, settings, 107, interval_minutes=10, first_run_at=start)
    started = []
    for step in range(120):
        now = start + timedelta(seconds=30 * step)
        summary = await tick(pool, settings, now)
        for cycle_id in summary.cycle_ids:
            started.append((await cycle_row(db, cycle_id))["scheduled_at"])
            await db.execute("UPDATE deliveries SET status = 'sent' WHERE cycle_id = %(c)s", {"c": cycle_id})
            await db.execute("UPDATE cycles SET status = 'done', finished_at = now() WHERE id = %(c)s", {"c": cycle_id})
    gaps = {b2 - a for a, b2 in itertools.pairwise(started)}
    assert len(started) == 7 and gaps == {timedelta(minutes=10)}  # 0..60 min: the due window reaches 60
    assert started[0] == start
    del b


async def test_late_tick_does_not_burst_to_catch_up(db, net, settings, pool) -> None:
    start = utcnow() - timedelta(hours=2)
    b = await make_broadcaster(db, net, settings, 108, interval_minutes=10, first_run_at=start)
    now = utcnow()
    summary = await tick(pool, settings, now)
    assert summary.enqueued == 1
    assert (await config_row(db, b.user_id))["next_run_at"] == now  # not start + 10 min, many times over
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now()")
    again = await tick(pool, settings, now)
    assert again.enqueued == 1  # exactly one more, then the clock is at now + interval
    assert (await config_row(db, b.user_id))["next_run_at"] == now + timedelta(minutes=10)
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now()")
    assert (await tick(pool, settings, now)).enqueued == 0


async def test_message_edit_applies_to_the_next_cycle_without_resetting_the_clock(db, net, settings, pool) -> None:
    from db import configs
    from tests.runtime_helpers import add_message

    b = await make_broadcaster(db, net, settings, 109, interval_minutes=10)
    first = await tick(pool, settings)
    clock = (await config_row(db, b.user_id))["next_run_at"]
    new_message = await add_message(db, b.user_id, "edited")
    await configs.set_message(db, b.user_id, new_message)
    assert (await config_row(db, b.user_id))["next_run_at"] == clock
    assert (await cycle_row(db, first.cycle_ids[0]))["message_id"] == b.message_id
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now()")
    second = await tick(pool, settings, clock)
    assert (await cycle_row(db, second.cycle_ids[0]))["message_id"] == new_message


async def test_skip_reasons(db, net, settings, pool, botapi) -> None:
    now = utcnow()
    await make_broadcaster(db, net, settings, 110)  # fine
    expired = await make_broadcaster(db, net, settings, 111, expires_at=now + timedelta(minutes=1))
    await db.execute("UPDATE bot_users SET expires_at = %(t)s WHERE user_id = 111", {"t": now - timedelta(seconds=1)})
    banned = await make_broadcaster(db, net, settings, 112)
    await db.execute("UPDATE bot_users SET status = 'banned' WHERE user_id = 112")
    revoked = await make_broadcaster(db, net, settings, 113)
    await db.execute("UPDATE accounts SET status = 'revoked' WHERE owner_id = 113")
    missing = await make_broadcaster(db, net, settings, 114)
    await db.execute("DELETE FROM accounts WHERE owner_id = 114")
    flooded = await make_broadcaster(db, net, settings, 115)
    flood_until = now + timedelta(minutes=7)
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE owner_id = 115", {"t": flood_until})
    no_message = await make_broadcaster(db, net, settings, 116)
    await db.execute("UPDATE messages SET deleted_at = now() WHERE owner_id = 116")
    no_groups = await make_broadcaster(db, net, settings, 117)
    await db.execute("UPDATE groups SET selected = false WHERE owner_id = 117")

    summary = await tick(pool, settings, now)
    assert summary.enqueued == 1
    assert summary.skipped == {"not_allowed": 2, "no_account": 2, "flood_pause": 1, "no_message": 1,
                               "no_groups": 1}
    # expired and banned users are stopped within this tick; only the expired one is told
    assert (await config_row(db, expired.user_id))["active"] is False
    assert (await config_row(db, banned.user_id))["active"] is False
    assert [m for m in botapi.messages(expired.user_id)]
    assert not botapi.messages(banned.user_id)
    assert (await config_row(db, flooded.user_id))["next_run_at"] == flood_until
    for b in (revoked, missing, no_message, no_groups):
        assert (await config_row(db, b.user_id))["next_run_at"] == now + timedelta(minutes=10)
    # told once only
    await db.execute("UPDATE configs SET active = true WHERE owner_id = 111")
    await tick(pool, settings, now)
    assert len(botapi.messages(expired.user_id)) == 1


async def test_expired_user_running_cycle_is_cancelled_within_one_tick(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 118, expires_at=utcnow() + timedelta(minutes=30))
    summary = await tick(pool, settings)
    [cycle_id] = summary.cycle_ids
    await make_due(db, b.user_id)
    await db.execute("UPDATE bot_users SET expires_at = now() - interval '1 second' WHERE user_id = 118")
    later = await tick(pool, settings)
    assert later.skipped == {"not_allowed": 1}
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"cancelled"}
    assert (await cycle_row(db, cycle_id))["status"] == "cancelled"


async def test_new_cycle_prunes_the_previous_cycles_delivery_rows(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 119, groups=4)
    first = await tick(pool, settings)
    await db.execute("UPDATE deliveries SET status = 'sent'")
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now(), sent = 4")
    await make_due(db, b.user_id)
    second = await tick(pool, settings)
    cur = await db.execute("SELECT cycle_id, count(*) FROM deliveries GROUP BY cycle_id")
    assert dict(await cur.fetchall()) == {second.cycle_ids[0]: 4}
    assert (await cycle_row(db, first.cycle_ids[0]))["sent"] == 4  # the summary stays


async def test_old_cycle_summaries_are_pruned(db, net, settings, pool) -> None:
    b = await make_broadcaster(db, net, settings, 120)
    summary = await tick(pool, settings)
    [cycle_id] = summary.cycle_ids
    await db.execute("UPDATE cycles SET status = 'done', finished_at = now() - interval '8 days'")
    later = await tick(pool, settings)
    assert later.pruned == 1
    cur = await db.execute("SELECT count(*) FROM cycles WHERE id = %(c)s", {"c": cycle_id})
    assert (await cur.fetchone())[0] == 0
    del b


async def test_expired_leases_go_back_to_pending(db, net, settings, pool) -> None:
    await make_broadcaster(db, net, settings, 121, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    now = utcnow()
    await db.execute(
        "UPDATE deliveries SET status = 'in_flight', lease_until = %(t)s WHERE cycle_id = %(c)s",
        {"t": now - timedelta(seconds=1), "c": cycle_id},
    )
    summary = await tick(pool, settings, now)
    assert summary.recovered >= 1
    rows = await deliveries_of(db, cycle_id)
    assert {r["status"] for r in rows} == {"pending"}


async def test_lost_job_after_redis_flush_is_re_enqueued_once(db, net, settings, pool, sync_redis) -> None:
    await make_broadcaster(db, net, settings, 122)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    sync_redis.flushdb()
    later = utcnow() + timedelta(minutes=2)
    summary = await tick(pool, settings, later)
    assert summary.recovered == 1
    assert len(all_job_ids(settings, sync_redis)) == 1
    assert all(j.startswith(f"send-{cycle_id}-") for j in all_job_ids(settings, sync_redis))
    again = await tick(pool, settings, later)
    assert again.recovered == 0  # the job is queued: nothing to recover
    assert len(all_job_ids(settings, sync_redis)) == 1


async def test_a_cycle_finished_while_its_job_was_checked_is_not_taken_up_again(
    db, net, settings, pool, sync_redis, monkeypatch,
) -> None:
    """The recovery reads the stalled cycles, then asks Redis about their jobs. A batch that finishes its
    cycle in between has let go of its lock, so its job looks dead; the cycle is read again before a
    second job is enqueued for it."""
    import psycopg

    await make_broadcaster(db, net, settings, 123)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    sync_redis.flushdb()  # as if the job were gone: only the second read can tell the cycle is over
    check = queues.live_cycles

    def finished_meanwhile(s, connection, cycles, now=None):
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("UPDATE deliveries SET status = 'sent' WHERE cycle_id = %s", (cycle_id,))
            conn.execute("UPDATE cycles SET status = 'done', finished_at = now() WHERE id = %s", (cycle_id,))
        return check(s, connection, cycles, now)

    monkeypatch.setattr(queues, "live_cycles", finished_meanwhile)
    summary = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert summary.recovered == 0
    assert all_job_ids(settings, sync_redis) == set()


async def test_a_job_that_moved_on_between_the_checks_reads_is_not_taken_for_lost(
    db, net, settings, pool, sync_redis, monkeypatch,
) -> None:
    """The scheduler queueing a job, or a worker taking it, between the read of its status and the read
    of its place makes one check find it nowhere: the cycles found lost are checked a second time."""
    await make_broadcaster(db, net, settings, 124)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    check = queues.live_cycles
    calls: list[list[int]] = []

    def moving(s, connection, cycles, now=None):
        calls.append([c for c, _ in cycles])
        return set() if len(calls) == 1 else check(s, connection, cycles, now)  # the first read misses it

    monkeypatch.setattr(queues, "live_cycles", moving)
    summary = await tick(pool, settings, utcnow() + timedelta(minutes=2))
    assert calls == [[cycle_id], [cycle_id]]
    assert summary.recovered == 0
    assert all_job_ids(settings, sync_redis) == {queues.send_job_id(cycle_id, "0")}


async def test_tick_selection_uses_the_configs_due_index(db, net, settings, pool) -> None:
    """5,000 configs that are inactive or not due, a few due ones: the planner picks the partial
    index by itself, so the cost follows the number due."""
    await db.execute(
        """
        INSERT INTO bot_users (user_id, status) SELECT g, 'active' FROM generate_series(1000000, 1004999) g
        """
    )
    await db.execute(
        """
        INSERT INTO messages (owner_id, kind, text, content_hash)
        SELECT g, 'text', 'x', 'h' FROM generate_series(1000000, 1004999) g
        """
    )
    await db.execute(
        """
        INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at)
        SELECT m.owner_id, m.id, 10, m.owner_id % 2 = 0, now() + make_interval(mins => (60 + m.owner_id % 500)::int)
        FROM messages m
        """
    )
    for n in range(5):
        await make_broadcaster(db, net, settings, 500 + n, groups=1)
    await db.execute("ANALYZE configs")
    cur = await db.execute(
        """
        EXPLAIN SELECT owner_id, message_id, interval_minutes, next_run_at, cycle FROM configs
        WHERE active AND next_run_at <= now() + interval '60 seconds'
        ORDER BY next_run_at LIMIT 1000 FOR UPDATE SKIP LOCKED
        """
    )
    plan = "\n".join(row[0] for row in await cur.fetchall())
    assert "configs_due" in plan and "Seq Scan" not in plan, plan
    summary = await tick(pool, settings)
    assert summary.enqueued == 5


async def test_tick_sql_is_the_explained_query() -> None:
    """The EXPLAIN above must stay the tick's real query."""
    import inspect

    from db import tick as tick_sql

    source = inspect.getsource(tick_sql.lock_due)
    assert "WHERE active AND next_run_at <= %(until)s" in source and "FOR UPDATE SKIP LOCKED" in source


# ---- the endpoint and the command ------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", f"Basic {TICK_TOKEN}", TICK_TOKEN])
async def test_tick_endpoint_needs_the_bearer_token(client, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.post("/tick", headers=headers)
    assert response.status_code == 401


async def test_tick_endpoint_runs_a_tick_and_returns_its_summary(client, db, net, settings) -> None:
    await make_broadcaster(db, net, settings, 123)
    response = await client.post("/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert set(body) == {"enqueued", "skipped", "recovered", "pruned", "duration_ms"}
    assert body["enqueued"] == 1 and body["skipped"] == {}


async def test_tick_command_prints_the_summary(db, net, settings, monkeypatch, capsys) -> None:
    import json

    import tgcast_cli as cli

    await make_broadcaster(db, net, settings, 124)
    monkeypatch.setattr(cli, "_settings", lambda: settings)
    assert await asyncio.to_thread(cli.main, ["tick"]) == 0
    assert json.loads(capsys.readouterr().out)["enqueued"] == 1


async def test_tick_endpoint_records_metrics_and_the_last_tick_time(client, db, net, settings, redis) -> None:
    from services.gauges import last_tick_age

    await make_broadcaster(db, net, settings, 125)
    await make_broadcaster(db, net, settings, 126)
    await db.execute("UPDATE groups SET selected = false WHERE owner_id = 126")
    response = await client.post("/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"})
    assert response.status_code == 200
    prefix = f"{settings.redis_prefix}metrics:"
    assert await redis.hgetall(f"{prefix}tgcast_ticks_total") == {b'["ok"]': b"1"}
    assert await redis.hgetall(f"{prefix}tgcast_tick_enqueued_total") == {b"[]": b"1"}
    assert await redis.hgetall(f"{prefix}tgcast_tick_skipped_total") == {b'["no_groups"]': b"1"}
    age = await last_tick_age(settings, redis)
    assert age is not None and age < 60


async def test_a_super_admin_is_always_allowed(db, net, settings, pool, admin) -> None:
    from jobs.send_batch import run_batch
    from tests.runtime_helpers import job_context

    b = await make_broadcaster(db, net, settings, admin.id, groups=1)
    await db.execute("UPDATE bot_users SET status = 'pending', expires_at = now() - interval '1 day' "
                     "WHERE user_id = %(u)s", {"u": admin.id})
    summary = await tick(pool, settings)
    assert summary.enqueued == 1 and summary.skipped == {}
    async with job_context(settings) as ctx:
        assert (await run_batch(ctx, summary.cycle_ids[0])).outcome == "finished"
    assert len(await net.posted(b.chat_ids[0])) == 1
