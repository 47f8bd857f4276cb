"""admin_stats: users, broadcasts, the last 24 h of sends, flood pauses, queues, lag, and a chart."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from aiogram import Bot, Router
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup
from psycopg_pool import AsyncConnectionPool

from core.chart import bar_chart
from core.i18n import Translator
from core.settings import Settings
from db import ops, users
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button
from handlers.payments.admin import stats_section as payments_stats_section
from services.gauges import queue_stats


async def stats_text(pool: AsyncConnectionPool, settings: Settings, tr: Translator) -> tuple[str, list[int]]:
    # The operators' read model (db/ops.py), the one /ops, /metrics and `tgcast stats` read: the last 24 h.
    async with pool.connection() as conn:
        counts = await users.counts(conn)
        broadcasts = await ops.active_configs(conn)
        sends = await ops.delivery_totals(conn)
        reasons = await ops.failures_by_reason(conn)
        flood = (await ops.accounts_by_state(conn))["flood_paused"]
        lag = (await ops.lag_percentiles(conn)).p95_ms
        hourly = [h.sent for h in await ops.deliveries_per_hour(conn)]
    broadcast_queue, announce_queue = await queue_stats(settings)
    lines = [
        tr("admin.stats_title"),
        tr("admin.stats_users", total=counts.total, active=counts.active, pending=counts.pending,
           banned=counts.banned),
        tr("admin.stats_broadcasts", count=broadcasts),
        tr("admin.stats_deliveries", sent=sends.sent, failed=sends.failed, cancelled=sends.cancelled),
    ]
    if reasons:
        lines.append(tr("admin.stats_reasons", reasons=", ".join(f"{html.escape(k)} {v}" for k, v in reasons)))
    lines += [
        tr("admin.stats_flood", count=flood),
        tr("admin.stats_queue", broadcast=broadcast_queue.depth, announce=announce_queue.depth),
        tr("admin.stats_lag", lag=round(lag)) if lag is not None else tr("admin.stats_lag_none"),
    ]
    return "\n".join(lines), hourly


def hour_axis(now: datetime, hours: int) -> tuple[list[str], list[str]]:
    """Labels of `db.ops.deliveries_per_hour`'s buckets (the last is the current hour): every third
    hour ("15h"), and the date under the first bar and under each midnight."""
    first = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    starts = [first + timedelta(hours=i) for i in range(hours)]
    return ([f"{h:%H}h" if h.hour % 3 == 0 else "" for h in starts],
            [f"{h:%m-%d}" if i == 0 or h.hour == 0 else "" for i, h in enumerate(starts)])


def day_axis(now: datetime, days: int) -> list[str]:
    """Labels of per-day buckets ending today: the date of every fifth day, counted back from today."""
    today = now.astimezone(UTC).date()
    return [f"{today - timedelta(days=days - 1 - i):%m-%d}" if (days - 1 - i) % 5 == 0 else ""
            for i in range(days)]


async def show_stats(query: CallbackQuery, bot: Bot, pool: AsyncConnectionPool, settings: Settings,
                     tr: Translator) -> None:
    await query.answer()
    now = datetime.now(UTC)
    text, hourly = await stats_text(pool, settings, tr)
    hours, dates = hour_axis(now, len(hourly))
    png = bar_chart(hourly, x_labels=hours, x_notes=dates, corner="UTC")
    await bot.send_photo(query.from_user.id, BufferedInputFile(png, "sends-24h.png"), caption=tr("admin.stats_chart"))
    if settings.plans:  # Stars earned per day, and the payments line (docs/payments.md)
        stars_line, daily = await payments_stats_section(pool, tr, now)
        chart = bar_chart(daily, x_labels=day_axis(now, len(daily)), corner="UTC")
        await bot.send_photo(query.from_user.id, BufferedInputFile(chart, "stars-30d.png"),
                             caption=tr("payments.stats_chart"))
        text = f"{text}\n{stars_line}"
    markup = InlineKeyboardMarkup(inline_keyboard=[
        [button(tr("admin.btn_refresh"), cb.AdminStats()), button(tr("admin.btn_menu"), cb.BackToMenu())],
    ])
    # A new message below the chart, so the numbers and the picture read together.
    await bot.send_message(query.from_user.id, text, reply_markup=markup)


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.middleware(SuperAdminOnly())
    router.callback_query.register(show_stats, cb.AdminStats.filter())
    return router
