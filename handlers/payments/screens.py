"""What the payment feature adds to other screens: the buy offer, the plan list, the menu's access
lines. Each returns nothing when there are no plans and no subscription, so without PLANS every
screen is exactly what it was."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from psycopg import AsyncConnection

from core.i18n import Translator
from core.plans import Plan
from core.settings import Settings
from db import payments, users
from db.rows import BotUser
from handlers import callbacks as cb
from handlers.admin.common import button, day
from handlers.payments import callbacks as pcb


def plan_buttons(plans: tuple[Plan, ...], tr: Translator) -> list[list[InlineKeyboardButton]]:
    rows = []
    for plan in plans:
        key = "payments.btn_plan_recurring" if plan.recurring else "payments.btn_plan"
        rows.append([button(tr.n(key, plan.days, stars=plan.stars, days=plan.days), pcb.PayBuy(plan=plan.name))])
    return rows


def offer(settings: Settings, tr: Translator) -> tuple[str, InlineKeyboardMarkup] | None:
    """Under "no access" texts: a line and the plans; None without PLANS."""
    if not settings.plans:
        return None
    rows = [*plan_buttons(settings.plans, tr), [button(tr("payments.btn_terms"), pcb.PayTerms())]]
    return tr("payments.offer"), InlineKeyboardMarkup(inline_keyboard=rows)


def plans_screen(settings: Settings, tr: Translator, *, with_back: bool) -> tuple[str, InlineKeyboardMarkup]:
    lines = [tr("payments.plans_title"), ""]
    for plan in settings.plans:
        key = "payments.plan_line_recurring" if plan.recurring else "payments.plan_line"
        lines.append(tr.n(key, plan.days, days=plan.days, stars=plan.stars))
    rows = [*plan_buttons(settings.plans, tr), [button(tr("payments.btn_terms"), pcb.PayTerms())]]
    if with_back:
        rows.append([button(tr("payments.btn_back"), cb.BackToMenu())])
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows)


def refund_notice(tr: Translator, stars: int, row: BotUser | None, now: datetime, *, renewal: bool = False) -> str:
    """What a refund did to the user's access, told with it: when access now ends, or that it has
    ended (or that it never ends). `renewal`: the bot's own refund of a renewal the user cancelled."""
    base = "payments.renewal_refunded" if renewal else "payments.refunded"
    if row is not None and row.allowed_at(now):
        if row.expires_at is None:
            return tr(f"{base}_permanent", stars=stars)
        return tr(f"{base}_until", stars=stars, date=day(row.expires_at))
    return tr(f"{base}_ended", stars=stars)


async def menu_section(conn: AsyncConnection, settings: Settings, tr: Translator,
                       user_id: int) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    """For an allowed user's menu: when access ends and whether it renews, and the matching button
    (extend, or cancel renewal)."""
    subs = await payments.subscriptions(conn, user_id)
    if not settings.plans and not subs:
        return [], []
    row = await users.get(conn, user_id)
    now = datetime.now(UTC)
    lines: list[str] = []
    rows: list[list[InlineKeyboardButton]] = []
    renewing = sorted(s.renews_at for s in subs if s.renews(now) and s.renews_at is not None)
    if row is not None and row.expires_at is not None:
        lines.append(tr("payments.menu_until", date=day(row.expires_at)))
        if renewing:
            lines.append(tr("payments.menu_renews", date=day(renewing[0])))  # the next charge
        elif any(s.canceled for s in subs) and row.expires_at > now:
            lines.append(tr("payments.menu_renewal_off", date=day(row.expires_at)))
    if renewing:
        rows.append([button(tr("payments.btn_cancel_renewal"), pcb.PayCancel())])
    elif settings.plans and row is not None and row.expires_at is not None:
        rows.append([button(tr("payments.btn_extend"), pcb.PayPlans())])
    return lines, rows
