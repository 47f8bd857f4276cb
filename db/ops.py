"""The one read model of operator figures: the scrape-time gauges of /metrics, the /ops page,
`tgcast stats`, and the super admin's statistics screen and menu all read these queries.

Everything over "the last 24 h" reads the cycle summaries (`cycles`), which outlive the pruned
delivery rows, so the numbers stay right after pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection, Connection
from psycopg.rows import class_row

WINDOW_HOURS = 24


@dataclass(slots=True)
class HourCount:
    hour: datetime
    sent: int
    failed: int


@dataclass(slots=True)
class LagPercentiles:
    cycles: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(slots=True)
class PausedAccount:
    owner_id: int
    flood_until: datetime
    pause_reason: str | None


@dataclass(slots=True)
class DeliveryTotals:
    sent: int
    failed: int
    cancelled: int


async def users_by_status(conn: AsyncConnection) -> dict[str, int]:
    """pending, active, expired (active with a past expiry) and banned; every status present."""
    cur = await conn.execute(
        """
        SELECT CASE WHEN status = 'active' AND expires_at <= now() THEN 'expired' ELSE status END, count(*)
        FROM bot_users GROUP BY 1
        """
    )
    counts = {"pending": 0, "active": 0, "expired": 0, "banned": 0}
    counts.update({str(state): int(n) for state, n in await cur.fetchall()})
    return counts


async def accounts_by_state(conn: AsyncConnection) -> dict[str, int]:
    """active, flood_paused (active but told to wait) and revoked; disjoint, every state present."""
    cur = await conn.execute(
        """
        SELECT CASE WHEN status = 'revoked' THEN 'revoked'
                    WHEN flood_until > now() THEN 'flood_paused'
                    ELSE 'active' END, count(*)
        FROM accounts GROUP BY 1
        """
    )
    counts = {"active": 0, "flood_paused": 0, "revoked": 0}
    counts.update({str(state): int(n) for state, n in await cur.fetchall()})
    return counts


async def active_configs(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT count(*) FROM configs WHERE active")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def lag_percentiles(conn: AsyncConnection, hours: int = WINDOW_HOURS) -> LagPercentiles:
    cur = conn.cursor(row_factory=class_row(LagPercentiles))
    await cur.execute(
        """
        SELECT count(*)::int AS cycles,
               percentile_cont(0.50) WITHIN GROUP (ORDER BY lag_ms) AS p50_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY lag_ms) AS p95_ms,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms) AS p99_ms
        FROM cycles
        WHERE lag_ms IS NOT NULL AND started_at >= now() - make_interval(hours => %(hours)s)
        """,
        {"hours": hours},
    )
    row = await cur.fetchone()
    return row if row is not None else LagPercentiles(0, None, None, None)


async def deliveries_per_hour(conn: AsyncConnection, hours: int = WINDOW_HOURS) -> list[HourCount]:
    """Sent and failed per hour of the cycles' finish, oldest first, one row per hour (zeros kept:
    a chart with gaps closed up would hide an outage)."""
    cur = conn.cursor(row_factory=class_row(HourCount))
    await cur.execute(
        """
        WITH hours AS (
            SELECT generate_series(date_trunc('hour', now()) - make_interval(hours => %(hours)s - 1),
                                   date_trunc('hour', now()), interval '1 hour') AS hour
        ), done AS (
            SELECT date_trunc('hour', finished_at) AS hour, sum(sent) AS sent, sum(failed) AS failed
            FROM cycles
            WHERE finished_at >= date_trunc('hour', now()) - make_interval(hours => %(hours)s - 1)
            GROUP BY 1
        )
        SELECT hours.hour, COALESCE(done.sent, 0)::int AS sent, COALESCE(done.failed, 0)::int AS failed
        FROM hours LEFT JOIN done USING (hour)
        ORDER BY hours.hour
        """,
        {"hours": hours},
    )
    return await cur.fetchall()


async def failures_by_reason(conn: AsyncConnection, hours: int = WINDOW_HOURS) -> list[tuple[str, int]]:
    """Failure reasons of the cycles finished in the window, most frequent first."""
    cur = await conn.execute(
        """
        SELECT reason.key, sum(reason.value::int)::int
        FROM cycles, jsonb_each_text(cycles.reasons) AS reason
        WHERE finished_at >= now() - make_interval(hours => %(hours)s)
        GROUP BY reason.key
        ORDER BY 2 DESC, 1
        """,
        {"hours": hours},
    )
    return [(str(key), int(n)) for key, n in await cur.fetchall()]


async def delivery_totals(conn: AsyncConnection, hours: int = WINDOW_HOURS) -> DeliveryTotals:
    cur = conn.cursor(row_factory=class_row(DeliveryTotals))
    await cur.execute(
        """
        SELECT COALESCE(sum(sent), 0)::int AS sent, COALESCE(sum(failed), 0)::int AS failed,
               COALESCE(sum(cancelled), 0)::int AS cancelled
        FROM cycles WHERE finished_at >= now() - make_interval(hours => %(hours)s)
        """,
        {"hours": hours},
    )
    row = await cur.fetchone()
    return row if row is not None else DeliveryTotals(0, 0, 0)


async def paused_accounts(conn: AsyncConnection, limit: int = 50) -> list[PausedAccount]:
    """Active accounts Telegram told to wait, soonest back first."""
    cur = conn.cursor(row_factory=class_row(PausedAccount))
    await cur.execute(
        """
        SELECT owner_id, flood_until, pause_reason FROM accounts
        WHERE status = 'active' AND flood_until > now()
        ORDER BY flood_until LIMIT %(limit)s
        """,
        {"limit": limit},
    )
    return await cur.fetchall()


def autovacuum_on(conn: Connection) -> bool:
    """Whether the server vacuums by itself: the deliveries queue depends on it (docs/runtime.md,
    "Queue upkeep"). A per-table setting cannot turn it on where the server has it off."""
    row = conn.execute("SELECT current_setting('autovacuum') = 'on'").fetchone()
    return bool(row and row[0])
