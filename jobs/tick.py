"""The tick behind `POST /tick` and `tgcast tick` (docs/runtime.md, "Tick").

One tick: lock the due configs, skip (and count) the ones that cannot run, create a cycle with its
deliveries for the others in the same transaction, enqueue each cycle's first job at its jittered
time; meanwhile recover what crashes and Redis losses left behind; then prune old summaries. Every
step is safe to repeat and to run from two ticks at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from core.schedule import cycle_jitter_ms, cycle_start, next_run_at
from core.settings import Settings
from db import tick as sql
from jobs.notices import notify
from services import access, broadcast
from services.gauges import last_tick_key
from services.metrics import Metrics
from worker import own_queues, queues
from worker.botapi import BotApiClient
from worker.context import bot_api_client

# A cycle younger than this is left to the tick that created it (it enqueues right after commit);
# only older ones without a live job count as lost.
RECOVERY_GRACE = timedelta(seconds=30)


@dataclass(slots=True)
class TickSummary:
    enqueued: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    recovered: int = 0  # expired leases released + lost cycles re-enqueued
    pruned: int = 0
    duration_ms: int = 0
    cycle_ids: list[int] = field(default_factory=list)  # created by this tick (not in the JSON)

    def as_json(self) -> dict[str, Any]:
        return {"enqueued": self.enqueued, "skipped": dict(self.skipped), "recovered": self.recovered,
                "pruned": self.pruned, "duration_ms": self.duration_ms}


@dataclass(slots=True)
class _Planned:
    cycle_id: int
    account_id: int | None  # the owner's first active account: where its connection is, the job goes
    run_at: datetime


# A tick drains what is due in slices of TICK_CAP configs, each slice its own transaction, until a slice
# comes back short: the cap bounds one transaction, not how many cycles a tick starts, so a once-a-minute
# cron keeps up with any number due per minute (docs/runtime.md, "Due selection"). A backlog larger than
# this much work (after an outage) is left to the next call, so that one call stays well inside the
# cron's minute.
DRAIN_BUDGET_S = 30.0
# Slices run this many at a time, each on its own connection: most of a slice is PostgreSQL writing its
# cycles' delivery rows, which one backend does on one core, and the enqueue's Python overlaps the other
# slice's SQL. Two slices at once are as safe as two ticks at once (SKIP LOCKED gives them disjoint
# configs). Two: the production cron's 2,000 due a minute is two slices at the default TICK_CAP.
SLICES_AT_ONCE = 2


async def tick(
    pool: AsyncConnectionPool, settings: Settings, now: datetime | None = None, *,
    botapi: BotApiClient | None = None,
) -> TickSummary:
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    summary = TickSummary()
    skipped: Counter[str] = Counter()
    expired: list[tuple[int, str]] = []
    handled: list[int] = []  # owners whose configs this tick decided on, never taken twice
    # The recovery runs beside the slices, on a connection of its own: it looks only at cycles older
    # than RECOVERY_GRACE and at rows in flight, never at what this tick creates, so the two are as
    # independent as two ticks at once, and a minute of the real shape does not wait for it (~50-100 ms
    # at 1,000-2,000 running cycles, mostly the Redis check of their jobs).
    recovering = asyncio.ensure_future(_recover_lost(pool, settings, now))
    try:
        while True:
            taken = await asyncio.gather(*(_start_due(pool, settings, now, summary, skipped, expired, handled)
                                           for _ in range(SLICES_AT_ONCE)))
            if min(taken) < settings.tick_cap or time.perf_counter() - started > DRAIN_BUDGET_S:
                break
    except BaseException:
        recovering.cancel()
        await asyncio.wait([recovering])
        raise
    summary.recovered = await recovering
    async with pool.connection() as conn:
        # Cycle summaries past the retention, then the messages, media and notices nothing needs.
        summary.pruned = await sql.prune(conn, now, timedelta(days=settings.run_retention_days))
        if expired:
            client = botapi or bot_api_client(settings)
            try:
                for owner_id, ref in expired:
                    await notify(conn, client, settings, owner_id, cause="expired", ref=ref, key="notices.expired")
            finally:
                if botapi is None:
                    await client.aclose()
    summary.skipped = dict(skipped)
    summary.duration_ms = int((time.perf_counter() - started) * 1000)
    return summary


async def _recover_lost(pool: AsyncConnectionPool, settings: Settings, now: datetime) -> int:
    """Expired leases released, and cycles whose job was lost enqueued again; returns how many."""
    async with pool.connection() as conn:
        released = await sql.release_expired_leases(conn, now)
        stalled = await sql.stalled_cycles(conn, now - RECOVERY_GRACE)
    queue_redis = queues.sync_redis(settings)
    try:
        lost = await asyncio.to_thread(_lost, settings, queue_redis, stalled, now)
        if lost:
            # Read again: a batch may have finished its cycle between the first read and the Redis check.
            async with pool.connection() as conn:
                still = await sql.still_stalled(conn, [c.id for c in lost])
            lost = [c for c in lost if c.id in still]
        requeued = await asyncio.to_thread(_requeue, settings, queue_redis, lost, now) if lost else 0
    finally:
        queue_redis.close()
    return len(released) + requeued


async def _start_due(
    pool: AsyncConnectionPool, settings: Settings, now: datetime, summary: TickSummary,
    skipped: Counter[str], expired: list[tuple[int, str]], handled: list[int],
) -> int:
    """One slice: lock up to TICK_CAP due configs not yet handled by this tick, start the cycles of
    those that can run (one transaction), then enqueue them. Returns how many configs it took."""
    plans: list[sql.PlannedCycle] = []
    postponed: list[tuple[int, datetime]] = []
    async with pool.connection() as conn:
        async with conn.transaction():
            due = await sql.lock_due(conn, now + timedelta(seconds=settings.due_window_s), settings.tick_cap,
                                     exclude=handled)
            if not due:
                return 0  # the other slice of this round took what was left: nothing to read or write
            handled.extend(d.owner_id for d in due)
            states = await sql.owner_states(conn, [d.owner_id for d in due])
            for config in due:
                state = states[config.owner_id]
                interval = timedelta(minutes=config.interval_minutes)
                # Super admins are always allowed (services.access.is_super_admin), whatever their row says.
                if not access.is_super_admin(settings, config.owner_id, state.admin_usernames) \
                        and not state.allowed_at(now):
                    was_active, _ = await broadcast.stop(conn, config.owner_id)
                    if was_active and state.status == "active":  # expired; a ban has its own reply
                        expired.append((config.owner_id, state.expires_at.isoformat() if state.expires_at else ""))
                    skipped["not_allowed"] += 1
                    continue
                reason = _skip_reason(state, now)
                if reason is not None:
                    later = now + interval
                    if reason == "flood_pause" and state.flood_until is not None:
                        later = max(state.flood_until, config.next_run_at)
                    postponed.append((config.owner_id, later))
                    skipped[reason] += 1
                    continue
                # The stored next_run_at is not trusted alone: whatever wrote it, a cycle never starts
                # earlier than one interval after the previous cycle's scheduled start.
                scheduled_at = cycle_start(config.next_run_at, config.last_scheduled_at, config.interval_minutes)
                if scheduled_at > now + timedelta(seconds=settings.due_window_s):
                    postponed.append((config.owner_id, scheduled_at))
                    skipped["interval"] += 1
                    continue
                jitter = timedelta(milliseconds=cycle_jitter_ms(config.owner_id, config.cycle + 1,
                                                                 settings.jitter_max_ms))
                plans.append(sql.PlannedCycle(
                    config, scheduled_at=scheduled_at, run_at=scheduled_at + jitter,
                    next_run_at=next_run_at(scheduled_at, config.interval_minutes, now),
                ))
            # Decided one config at a time, written all at once: a constant number of statements per
            # slice, however many configs are due (docs/runtime.md, "Cost of a tick").
            await sql.postpone_many(conn, postponed)
            created = await sql.create_cycles(conn, plans)
    planned = [_Planned(c.id, next(iter(states[c.owner_id].account_ids), None), p.run_at)
               for c, p in zip(created, plans, strict=True)]
    # Enqueued after the commit, so a job never looks for a cycle that does not exist yet. A crash
    # in between is repaired by the recovery (in a later tick).
    if planned:
        queue_redis = queues.sync_redis(settings)
        try:
            # Awaited first, then added: the other slice of this round adds its own meanwhile.
            enqueued = await asyncio.to_thread(_enqueue_planned, settings, queue_redis, planned, now)
            summary.enqueued += enqueued
        finally:
            queue_redis.close()
        summary.cycle_ids += [p.cycle_id for p in planned]
    return len(due)


async def record_tick(redis: Redis, settings: Settings, summary: TickSummary | None) -> None:
    """Metrics of one tick (None: it failed) and the time of the last good one, for /metrics."""
    async with Metrics(redis, settings.redis_prefix).pipeline() as m:
        m.inc("tgcast_ticks_total", result="ok" if summary is not None else "error")
        if summary is not None:
            m.observe("tgcast_tick_duration_seconds", summary.duration_ms / 1000)
            if summary.enqueued:
                m.inc("tgcast_tick_enqueued_total", summary.enqueued)
            for reason, count in summary.skipped.items():
                m.inc("tgcast_tick_skipped_total", count, reason=reason)
    if summary is not None:
        await redis.set(last_tick_key(settings), time.time())


def _skip_reason(state: sql.OwnerState, now: datetime) -> str | None:
    if state.account_status != "active":
        return "no_account"
    if state.flood_until is not None and state.flood_until > now:
        return "flood_pause"
    if not state.has_message:
        return "no_message"
    if state.selected_groups == 0:
        return "no_groups"
    if state.running_cycle:
        return "previous_cycle_running"
    return None


def _enqueue_planned(settings: Settings, connection: SyncRedis, planned: list[_Planned], now: datetime) -> int:
    """Each cycle's first job, on the queue of the worker that holds its first account's connection where
    there is one (worker/own_queues.py), else on the shared queue; all of them in a few round trips."""
    homes = own_queues.home_queues(settings, connection, {p.account_id for p in planned if p.account_id is not None})
    sends = [queues.Send(p.cycle_id, p.run_at, tag="0",
                         queue_name=homes.get(p.account_id) if p.account_id is not None else None)
             for p in planned]
    return sum(job_id is not None for job_id in queues.enqueue_sends(settings, connection, sends, now=now))


def _lost(settings: Settings, connection: SyncRedis, stalled: list[sql.StalledCycle], now: datetime
          ) -> list[sql.StalledCycle]:
    """The stalled cycles no job carries on any more (worker.queues.live_cycles)."""
    live = queues.live_cycles(settings, connection, [(c.id, c.account_ids) for c in stalled], now)
    suspects = [c for c in stalled if c.id not in live]
    if suspects:
        # A job moving on between the check's reads (the scheduler queueing it, a worker taking it) was
        # in none of the places its status named: the few found lost are checked once more, where a
        # job that moved on is found in its new state and a lost one is lost again.
        live = queues.live_cycles(settings, connection, [(c.id, c.account_ids) for c in suspects], now)
    return [c for c in suspects if c.id not in live]


def _requeue(settings: Settings, connection: SyncRedis, lost: list[sql.StalledCycle], now: datetime) -> int:
    """Re-enqueue the cycles whose job was lost. On the shared queue, not the account's home: the job
    that was lost may have died with the worker that still looks like the home (its keys outlive it by
    up to HOME_TTL_S), and any live worker can take a job from the shared queue."""
    sends = [queues.Send(c.id, max(now, c.earliest_due) if c.earliest_due else now) for c in lost]
    return sum(job_id is not None for job_id in queues.enqueue_sends(settings, connection, sends, now=now))
