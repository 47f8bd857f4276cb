"""admin_stats: users, broadcasts, the last 24 h of sends, flood pauses, queues, lag, and a chart."""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime, timedelta

from aiogram import Bot, Router
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup
from psycopg_pool import AsyncConnectionPool
from rq import Queue

from core.chart import bar_chart
from core.i18n import Translator
from core.settings import Settings
from db import stats, users
from handlers import callbacks as cb
from handlers.admin.common import SuperAdminOnly, button
from handlers.payments.admin import stats_section as payments_stats_section
from jobs.queues import announce_queue_name, broadcast_queue_name, sync_redis


def queue_depths(settings: Settings) -> tuple[int, int]:
    connection = sync_redis(settings)
    try:
        return (Queue(broadcast_queue_name(settings), connection=connection).count,
                Queue(announce_queue_name(settings), connection=connection).count)
    finally:
        connection.close()


async def stats_text(pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                     now: datetime) -> tuple[str, list[int]]:
    since = now - timedelta(hours=24)
    async with pool.connection() as conn:
        counts = await users.counts(conn)
        broadcasts = await stats.active_broadcasts(conn)
        sends = await stats.deliveries_since(conn, since)
        flood = await stats.accounts_in_flood(conn, now)
        lag = await stats.lag_p95_ms(conn, since)
        hourly = await stats.sent_per_hour(conn, now)
    broadcast_depth, announce_depth = await asyncio.to_thread(queue_depths, settings)
    lines = [
        tr("admin.stats_title"),
        tr("admin.stats_users", total=counts.total, active=counts.active, pending=counts.pending,
           banned=counts.banned),
        tr("admin.stats_broadcasts", count=broadcasts),
        tr("admin.stats_deliveries", sent=sends.sent, failed=sends.failed, cancelled=sends.cancelled),
    ]
    if sends.reasons:
        reasons = ", ".join(f"{html.escape(k)} {v}" for k, v in sends.reasons.items())
        lines.append(tr("admin.stats_reasons", reasons=reasons))
    lines += [
        tr("admin.stats_flood", count=flood),
        tr("admin.stats_queue", broadcast=broadcast_depth, announce=announce_depth),
        tr("admin.stats_lag", lag=lag) if lag is not None else tr("admin.stats_lag_none"),
    ]
    return "\n".join(lines), hourly


def hour_axis(now: datetime, hours: int) -> tuple[list[str], list[str]]:
    """Labels of `db.stats.sent_per_hour`'s buckets (the last is the current hour): every third
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
    text, hourly = await stats_text(pool, settings, tr, now)
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
