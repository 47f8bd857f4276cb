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


async def menu_section(conn: AsyncConnection, settings: Settings, tr: Translator,
                       user_id: int) -> tuple[list[str], list[list[InlineKeyboardButton]]]:
    """For an allowed user's menu: when access ends and whether it renews, and the matching button
    (extend, or cancel renewal)."""
    sub = await payments.get_subscription(conn, user_id)
    if not settings.plans and sub is None:
        return [], []
    row = await users.get(conn, user_id)
    now = datetime.now(UTC)
    lines: list[str] = []
    rows: list[list[InlineKeyboardButton]] = []
    renews = sub is not None and sub.renews(now)
    if row is not None and row.expires_at is not None:
        lines.append(tr("payments.menu_until", date=day(row.expires_at)))
        if renews:
            assert sub is not None and sub.renews_at is not None
            lines.append(tr("payments.menu_renews", date=day(sub.renews_at)))
        elif sub is not None and sub.canceled and row.expires_at > now:
            lines.append(tr("payments.menu_renewal_off", date=day(row.expires_at)))
    if renews:
        rows.append([button(tr("payments.btn_cancel_renewal"), pcb.PayCancel())])
    elif settings.plans and row is not None and row.expires_at is not None:
        rows.append([button(tr("payments.btn_extend"), pcb.PayPlans())])
    return lines, rows
