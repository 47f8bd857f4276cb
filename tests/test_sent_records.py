"""The worker's group commit of "sent" records (worker/sent_records.py): concurrent batches' records go
in shared statements, each batch still learns whether its cycle is live before its next send, and a
failed or cancelled wait loses no record."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import AsyncConnectionPool

from db import configs
from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.runtime_helpers import deliveries_of, make_broadcaster, utcnow
from worker.sent_records import LINGER_S, SentRecorder, linger_for


async def _claim_all(db, cycle_id: int) -> list[int]:
    cur = await db.execute(
        "UPDATE deliveries SET status = 'in_flight', lease_until = now() + interval '2 minutes' "
        "WHERE cycle_id = %(c)s RETURNING id", {"c": cycle_id})
    return sorted(int(r[0]) for r in await cur.fetchall())


async def _group_times(db, owner_id: int) -> dict[int, object]:
    cur = await db.execute("SELECT chat_id, last_sent_at FROM groups WHERE owner_id = %(o)s", {"o": owner_id})
    return {int(r[0]): r[1] for r in await cur.fetchall()}


def test_the_linger_hides_in_the_pacing_pause() -> None:
    assert linger_for(1000) == LINGER_S  # production's 1-2 s pauses: the full linger
    assert linger_for(60) == 0.03  # never more than half the shortest pause
    assert linger_for(0) == 0  # no pause, no linger: nothing may slow an unpaced batch


@pytest.mark.parametrize("settings_overrides", [{"send_pause_min_ms": 200, "send_pause_max_ms": 200}])
async def test_concurrent_batches_share_statements_and_record_every_send(db, net, settings, pool, ctx) -> None:
    owners = [2101 + n for n in range(8)]
    for owner in owners:
        await make_broadcaster(db, net, settings, owner, groups=4)
    summary = await tick(pool, settings)
    assert len(summary.cycle_ids) == len(owners)
    # A linger of its own, so the batches' records meet in statements however loaded the machine is.
    ctx.sent_records = SentRecorder(pool, linger_s=0.2)
    before = ctx.sent_records.statements
    results = await asyncio.gather(*(run_batch(ctx, c) for c in summary.cycle_ids))
    assert [(r.outcome, r.sent) for r in results] == [("finished", 4)] * len(owners)
    for cycle_id in summary.cycle_ids:
        rows = await deliveries_of(db, cycle_id)
        assert [r["status"] for r in rows] == ["sent"] * 4
        assert all(r["tg_message_id"] and r["sent_at"] for r in rows)
    for owner in owners:
        assert all(t is not None for t in (await _group_times(db, owner)).values())
    written = ctx.sent_records.statements - before
    # 32 sends from 8 batches running at once: written together, not one statement each.
    assert 1 <= written <= 32 // 4, written
    await ctx.sent_records.close()


async def test_each_record_reports_its_own_row_and_its_cycle_liveness(db, net, settings, pool) -> None:
    live_owner, stopped_owner = 2201, 2202
    await make_broadcaster(db, net, settings, live_owner, groups=2)
    await make_broadcaster(db, net, settings, stopped_owner, groups=2)
    summary = await tick(pool, settings)
    live_cycle, stopped_cycle = sorted(summary.cycle_ids)
    live_ids = await _claim_all(db, live_cycle)
    stopped_ids = await _claim_all(db, stopped_cycle)
    await configs.deactivate(db, stopped_owner)
    # One of the live cycle's rows is no longer in flight (a stop's cancel got there first).
    await db.execute("UPDATE deliveries SET status = 'cancelled' WHERE id = %(id)s", {"id": live_ids[1]})
    recorder = SentRecorder(pool, linger_s=0.05)
    now = utcnow()
    answers = await asyncio.gather(
        recorder.record(live_ids[0], live_cycle, 11, now),
        recorder.record(live_ids[1], live_cycle, 12, now),
        recorder.record(stopped_ids[0], stopped_cycle, 13, now),
    )
    assert answers == [(True, True), (False, True), (True, False)]
    assert recorder.statements == 1
    rows = {r["id"]: r for r in await deliveries_of(db, live_cycle) + await deliveries_of(db, stopped_cycle)}
    assert (rows[live_ids[0]]["status"], rows[live_ids[0]]["tg_message_id"]) == ("sent", 11)
    assert rows[live_ids[1]]["status"] == "cancelled"
    assert (rows[stopped_ids[0]]["status"], rows[stopped_ids[0]]["tg_message_id"]) == ("sent", 13)
    # The cancelled row's post happened all the same: its group's spacing counts it.
    cancelled_chat = rows[live_ids[1]]["chat_id"]
    assert (await _group_times(db, live_owner))[cancelled_chat] == now


async def test_a_failed_statement_fails_its_records_only_and_the_recorder_goes_on(db, net, settings, pool) -> None:
    await make_broadcaster(db, net, settings, 2301, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    ids = await _claim_all(db, cycle_id)
    recorder = SentRecorder(pool, linger_s=0.01)
    # A message id outside bigint makes the whole statement fail, as a database error would.
    bad = await asyncio.gather(recorder.record(ids[0], cycle_id, 2**70, utcnow()), return_exceptions=True)
    assert isinstance(bad[0], Exception)
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"in_flight"}
    assert await recorder.record(ids[1], cycle_id, 21, utcnow()) == (True, True)
    statuses = {r["id"]: r["status"] for r in await deliveries_of(db, cycle_id)}
    assert statuses == {ids[0]: "in_flight", ids[1]: "sent"}


async def test_a_cancelled_wait_still_writes_its_record(db, net, settings, pool) -> None:
    await make_broadcaster(db, net, settings, 2401, groups=1)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    [delivery_id] = await _claim_all(db, cycle_id)
    recorder = SentRecorder(pool, linger_s=0.2)
    waiting = asyncio.create_task(recorder.record(delivery_id, cycle_id, 31, utcnow()))
    await asyncio.sleep(0.05)
    waiting.cancel()  # a job timeout cancelling the batch while its record waits
    await recorder.close()
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["tg_message_id"]) == ("sent", 31)


async def test_a_job_timeout_in_the_records_linger_never_gives_back_a_posted_row(db, net, settings, pool, ctx) -> None:
    """the batch is cancelled (its job timeout) while its "sent" record lingers."""
    await make_broadcaster(db, net, settings, 2501, groups=1)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    ctx.sent_records = SentRecorder(pool, linger_s=0.5)
    batch = asyncio.create_task(run_batch(ctx, cycle_id))
    [row] = await deliveries_of(db, cycle_id)
    # Until the record lingers (the post made and judged "sent"); waiting for the post alone could
    # cancel the batch while Telegram's answer is still on its way, which is another case (a resend).
    for _ in range(1000):
        if ctx.sent_records.waiting:
            break
        await asyncio.sleep(0.01)
    assert ctx.sent_records.waiting == 1, "the record never lingered"
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    await ctx.sent_records.close()
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], len(await net.posted(row["chat_id"]))) == ("sent", 1)


async def test_a_record_for_a_row_given_back_meanwhile_marks_it_sent(db, net, settings, pool) -> None:
    """the lease ran out and the tick gave the row back before its record came: the post was made, so
    the row is sent (no resend a lease later, when Telegram may have forgotten its random_id), and its
    group's time moves."""
    await make_broadcaster(db, net, settings, 2601, groups=2)
    [cycle_id] = (await tick(pool, settings)).cycle_ids
    ids = await _claim_all(db, cycle_id)
    await db.execute("UPDATE deliveries SET status = 'pending', lease_until = NULL WHERE id = %(id)s",
                     {"id": ids[0]})
    recorder = SentRecorder(pool, linger_s=0)
    assert await recorder.record(ids[0], cycle_id, 41, utcnow()) == (True, True)
    assert await recorder.record(ids[1], cycle_id, 42, utcnow()) == (True, True)
    rows = {r["id"]: r for r in await deliveries_of(db, cycle_id)}
    times = await _group_times(db, 2601)
    assert (rows[ids[0]]["status"], rows[ids[0]]["tg_message_id"]) == ("sent", 41)
    assert all(t is not None for t in times.values())


async def test_a_record_outlives_a_connection_postgresql_dropped(db, net, settings, pool) -> None:
    """PostgreSQL restarted under the worker's pool: the record's first write meets a dead connection
    and is written on the next try instead of failing the batch (which would leave a made post
    unrecorded, to be posted again a lease later)."""
    await make_broadcaster(db, net, settings, 2701, groups=2)
    name = "tgcast-test-recorder"
    recorder_pool = AsyncConnectionPool(settings.database_url, min_size=1, max_size=1, open=False,
                                        kwargs={"autocommit": True, "application_name": name})
    await recorder_pool.open(wait=True)
    try:
        async with recorder_pool.connection() as conn:
            await conn.execute("SELECT 1")  # the one pooled connection, warm
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %(n)s",
                         {"n": name})
        [cycle_id] = (await tick(pool, settings)).cycle_ids
        ids = await _claim_all(db, cycle_id)
        recorder = SentRecorder(recorder_pool, linger_s=0)
        assert await recorder.record(ids[0], cycle_id, 51, utcnow()) == (True, True)
        assert recorder.statements == 1
        [row, _] = await deliveries_of(db, cycle_id)
        assert row["status"] == "sent"
    finally:
        await recorder_pool.close()
