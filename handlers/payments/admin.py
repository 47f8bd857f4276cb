"""What the super admin sees of payments: the user card's payments section (with its refund buttons) and
the Stars figures of the statistics. The refunds themselves are handled by handlers/admin/refunds.py."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from aiogram.types import InlineKeyboardButton
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.i18n import Translator
from db import payments
from handlers.admin.common import button, day
from handlers.payments import callbacks as pcb

CARD_PAYMENTS = 5  # the newest payments listed on a card
CARD_REFUNDS = 3  # of which at most this many get a refund button
STATS_DAYS = 30


async def card_section(conn: AsyncConnection, tr: Translator,
                       user_id: int) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    """Lines and refund buttons for the user card; nothing for a user who never paid."""
    totals = await payments.user_totals(conn, user_id)
    if totals.payments == 0:
        return [], []
    lines = [tr.n("payments.card_totals", totals.stars, count=totals.payments, stars=totals.stars,
                  refunded=totals.refunded)]
    now = datetime.now(UTC)
    subs = await payments.subscriptions(conn, user_id)
    renewing = [s for s in subs if s.renews(now)]
    for sub in sorted(renewing, key=lambda s: (s.renews_at or now, s.charge_id)):
        lines.append(tr("payments.card_sub_renews", date=day(sub.renews_at)))
    if not renewing and any(s.canceled for s in subs):
        lines.append(tr("payments.card_sub_off"))
    rows: list[list[InlineKeyboardButton]] = []
    for p in await payments.recent(conn, user_id, CARD_PAYMENTS):
        lines.append(_payment_line(tr, p))
        if p.refunded_at is None and len(rows) < CARD_REFUNDS:
            rows.append([button(tr("payments.btn_refund", id=p.id, stars=p.stars), pcb.AdminRefund(id=p.id))])
    return lines, rows


def _payment_line(tr: Translator, p: payments.Payment) -> str:
    """A payment on the card; a refunded one says what the refund left of the access, as the user
    was told: until when, or that it ended then."""
    fields = {"id": p.id, "date": day(p.paid_at), "plan": html.escape(p.plan), "stars": p.stars}
    if p.refunded_at is None:
        return tr("payments.card_payment", **fields)
    if p.refund_expires_after is None:  # permanent access, untouched by the refund
        return tr("payments.card_payment_refunded", **fields)
    if p.refund_expires_after > p.refunded_at:
        return tr("payments.card_payment_refunded_until", until=day(p.refund_expires_after), **fields)
    return tr("payments.card_payment_refunded_ended", until=day(p.refund_expires_after), **fields)


async def stats_section(pool: AsyncConnectionPool, tr: Translator, now: datetime) -> tuple[str, list[int]]:
    """The Stars line of the statistics and the stars earned per day (for the chart)."""
    async with pool.connection() as conn:
        totals = await payments.totals_since(conn, now - timedelta(days=STATS_DAYS), now)
        daily = await payments.stars_per_day(conn, now, STATS_DAYS)
    line = tr.n("payments.stats_line", totals.payments, stars=totals.stars, payments=totals.payments,
                refunds=totals.refunds, refunded=totals.refunded_stars, subscriptions=totals.subscriptions)
    return line, daily
