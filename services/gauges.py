"""What is true right now, computed when someone looks: scrape-time gauges, the /ops page's snapshot.

Nothing here is recorded ahead of time, so the numbers are right whichever replica answers and
however many workers ran: they come from PostgreSQL (accounts, configs, cycle summaries) and Redis
(RQ queues, the time of the last tick).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from core.settings import Settings
from db import ops, payments
from services.metrics import Family, Metrics, gauge, render


@dataclass(frozen=True, slots=True)
class QueueStat:
    name: str
    depth: int  # waiting to be picked up now
    scheduled: int  # waiting for their time (enqueue_at)


@dataclass(slots=True)
class OpsSnapshot:
    queues: list[QueueStat]
    lag: ops.LagPercentiles
    per_hour: list[ops.HourCount]
    paused: list[ops.PausedAccount]
    failures: list[tuple[str, int]]
    accounts: dict[str, int]
    configs_active: int
    last_tick_age_s: float | None
    payments: list[payments.PlanTotals]


@dataclass(slots=True)
class Stats:
    """What `tgcast stats` prints."""

    users: dict[str, int]
    accounts: dict[str, int]
    configs_active: int
    deliveries_24h: ops.DeliveryTotals
    queues: list[QueueStat]
    last_tick_age_s: float | None


def queue_names(settings: Settings) -> list[str]:
    """The broadcast and the announcement queue, as worker/queues.py names them (a test keeps the two
    equal: services sit below worker and may not import it)."""
    return [f"{settings.queue_prefix}-broadcast", f"{settings.queue_prefix}-announce"]


def last_tick_key(settings: Settings) -> str:
    """Where the tick stores the unix time of its last finished run."""
    return f"{settings.redis_prefix}last_tick"


def _queue_stats_sync(settings: Settings) -> list[QueueStat]:
    # RQ only speaks to a sync client; a short-lived one keeps the scrape independent of the workers'.
    with SyncRedis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5) as conn:
        stats = []
        for name in queue_names(settings):
            queue = Queue(name, connection=conn)
            stats.append(QueueStat(name, queue.count, ScheduledJobRegistry(queue=queue).count))
        return stats


async def queue_stats(settings: Settings) -> list[QueueStat]:
    """The broadcast queue's, then the announcement queue's: what /metrics, /ops, `tgcast stats` and
    the admin's statistics show as queue depth."""
    return await asyncio.to_thread(_queue_stats_sync, settings)


async def last_tick_age(settings: Settings, redis: Redis, now: float | None = None) -> float | None:
    raw = await redis.get(last_tick_key(settings))
    if raw is None:
        return None
    try:
        at = float(raw)
    except ValueError:
        return None
    return max(0.0, (time.time() if now is None else now) - at)


async def gauges(settings: Settings, pool: AsyncConnectionPool, redis: Redis) -> list[Family]:
    async with pool.connection() as conn:
        accounts = await ops.accounts_by_state(conn)
        users = await ops.users_by_status(conn)
        configs = await ops.active_configs(conn)
        by_plan = await payments.totals_by_plan(conn, datetime.now(UTC))
    queues = await queue_stats(settings)
    age = await last_tick_age(settings, redis)
    return [
        gauge("tgcast_accounts", [({"state": s}, n) for s, n in accounts.items()]),
        gauge("tgcast_users", [({"status": s}, n) for s, n in users.items()]),
        gauge("tgcast_configs_active", [({}, configs)]),
        gauge("tgcast_queue_depth", [({"queue": q.name}, q.depth) for q in queues]),
        gauge("tgcast_queue_scheduled_jobs", [({"queue": q.name}, q.scheduled) for q in queues]),
        gauge("tgcast_last_tick_age_seconds", [] if age is None else [({}, age)]),
        gauge("tgcast_payments_total", [({"plan": t.plan}, t.payments) for t in by_plan]),
        gauge("tgcast_payment_stars_total", [({"plan": t.plan}, t.stars) for t in by_plan]),
        gauge("tgcast_refunds_total", [({"plan": t.plan}, t.refunds) for t in by_plan]),
        gauge("tgcast_refunded_stars_total", [({"plan": t.plan}, t.refunded_stars) for t in by_plan]),
        gauge("tgcast_subscriptions_renewing", [({"plan": t.plan}, t.renewing) for t in by_plan]),
    ]


async def scrape(settings: Settings, pool: AsyncConnectionPool, redis: Redis) -> str:
    """The whole /metrics body: recorded counters and histograms, then the gauges."""
    recorded = await Metrics(redis, settings.redis_prefix).collect()
    return render([*recorded, *await gauges(settings, pool, redis)])


async def snapshot(settings: Settings, pool: AsyncConnectionPool, redis: Redis) -> OpsSnapshot:
    async with pool.connection() as conn:
        lag = await ops.lag_percentiles(conn)
        per_hour = await ops.deliveries_per_hour(conn)
        paused = await ops.paused_accounts(conn)
        failures = await ops.failures_by_reason(conn)
        accounts = await ops.accounts_by_state(conn)
        configs = await ops.active_configs(conn)
        by_plan = await payments.totals_by_plan(conn, datetime.now(UTC))
    return OpsSnapshot(
        queues=await queue_stats(settings), lag=lag, per_hour=per_hour, paused=paused, failures=failures,
        accounts=accounts, configs_active=configs, last_tick_age_s=await last_tick_age(settings, redis),
        payments=by_plan,
    )


async def stats(settings: Settings, conn: AsyncConnection, redis: Redis) -> Stats:
    return Stats(
        users=await ops.users_by_status(conn), accounts=await ops.accounts_by_state(conn),
        configs_active=await ops.active_configs(conn), deliveries_24h=await ops.delivery_totals(conn),
        queues=await queue_stats(settings), last_tick_age_s=await last_tick_age(settings, redis),
    )
