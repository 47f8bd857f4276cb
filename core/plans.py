"""Paid plans (the PLANS setting) and the rules of a Stars payment, without I/O.

PLANS lists what a user can buy, e.g. `week:7:250,month:30:750:recurring`: a name, the days of
access it gives and its price in Telegram Stars, and optionally `recurring` for a monthly
subscription Telegram renews by itself (Telegram's only period is 30 days, so only a 30-day plan can
recur). An invoice's payload names the plan, its terms and the buyer, so a payment is granted by
what was sold even after an operator has changed PLANS; the pre-checkout check refuses an invoice
whose plan no longer exists or whose terms changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core import bounds

CURRENCY = "XTR"  # Telegram Stars: digital goods are sold in Stars only, with no payment provider
SUBSCRIPTION_DAYS = 30
SUBSCRIPTION_PERIOD_S = SUBSCRIPTION_DAYS * 24 * 3600  # the one period Telegram accepts
MAX_PLANS = 6  # one button each on the buy screen
PLAN_NAME = re.compile(r"^[a-z0-9_]{1,16}$")
PLAN_DAYS = bounds.Bound(1, 3650)
PLAN_STARS = bounds.Bound(1, 10000)  # Telegram's ceiling for one invoice and for a subscription price
PAYLOAD_VERSION = "tgc1"


class PlanError(ValueError):
    """PLANS is malformed; the message says which entry and why (it holds no secret)."""


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    days: int
    stars: int
    recurring: bool = False

    def __post_init__(self) -> None:
        if not PLAN_NAME.match(self.name):
            raise PlanError(f"plan name {self.name!r} must be 1-16 of a-z, 0-9, _")
        if self.days not in PLAN_DAYS:
            raise PlanError(f"plan {self.name}: days must be {PLAN_DAYS.low}..{PLAN_DAYS.high}")
        if self.stars not in PLAN_STARS:
            raise PlanError(f"plan {self.name}: stars must be {PLAN_STARS.low}..{PLAN_STARS.high}")
        if self.recurring and self.days != SUBSCRIPTION_DAYS:
            raise PlanError(f"plan {self.name}: only a {SUBSCRIPTION_DAYS}-day plan can be recurring")

    def __str__(self) -> str:
        """The PLANS entry it was read from (so settings written back to an environment read the same)."""
        return f"{self.name}:{self.days}:{self.stars}" + (":recurring" if self.recurring else "")


def parse_plans(text: str | None) -> tuple[Plan, ...]:
    """`name:days:stars[:recurring]`, comma-separated; empty or unset: no plans (sales are off)."""
    plans: list[Plan] = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = [p.strip() for p in entry.split(":")]
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "recurring"):
            raise PlanError(f"entry {entry!r} is not name:days:stars or name:days:stars:recurring")
        days = bounds.parse_int(parts[1], PLAN_DAYS)
        stars = bounds.parse_int(parts[2], PLAN_STARS)
        if days is None:
            raise PlanError(f"plan {parts[0]}: days must be a whole number {PLAN_DAYS.low}..{PLAN_DAYS.high}")
        if stars is None:
            raise PlanError(f"plan {parts[0]}: stars must be a whole number {PLAN_STARS.low}..{PLAN_STARS.high}")
        plans.append(Plan(parts[0].lower(), days, stars, recurring=len(parts) == 4))
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise PlanError("plan names must be unique")
    if len(plans) > MAX_PLANS:
        raise PlanError(f"at most {MAX_PLANS} plans")
    return tuple(plans)


def find_plan(plans: tuple[Plan, ...], name: str) -> Plan | None:
    return next((p for p in plans if p.name == name), None)


# ---- the invoice payload ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payload:
    plan: str
    days: int
    stars: int
    user_id: int

    def encode(self) -> str:
        return f"{PAYLOAD_VERSION}:{self.plan}:{self.days}:{self.stars}:{self.user_id}"


def payload_for(plan: Plan, user_id: int) -> Payload:
    return Payload(plan.name, plan.days, plan.stars, user_id)


def parse_payload(text: str) -> Payload | None:
    """What `Payload.encode` wrote, every number within its range; None for anything else."""
    parts = text.split(":")
    if len(parts) != 5 or parts[0] != PAYLOAD_VERSION or not PLAN_NAME.match(parts[1]):
        return None
    days = bounds.parse_int(parts[2], PLAN_DAYS)
    stars = bounds.parse_int(parts[3], PLAN_STARS)
    user_id = bounds.parse_int(parts[4], bounds.USER_ID)
    if days is None or stars is None or user_id is None:
        return None
    return Payload(parts[1], days, stars, user_id)


# ---- pre-checkout ----------------------------------------------------------------------------------


class Refusal(StrEnum):
    """Why a pre-checkout query is refused; each has its own text (payments.refuse_<value>)."""

    unknown_plan = "unknown_plan"  # a payload we did not write, or a plan PLANS no longer has
    plan_changed = "plan_changed"  # the plan's days or price changed since the invoice
    wrong_currency = "wrong_currency"
    wrong_amount = "wrong_amount"
    not_yours = "not_yours"  # an invoice made for someone else (invoice links can be forwarded)
    banned = "banned"
    # A second subscription while one renews: an invoice link sent earlier stays payable, and two
    # subscriptions would charge twice a month for the same access.
    already_subscribed = "already_subscribed"


def checkout_refusal(plans: tuple[Plan, ...], *, payload: str, currency: str, amount: int, payer_id: int,
                     payer_banned: bool, payer_subscribed: bool = False) -> Refusal | None:
    """None when the payment may go ahead: the plan exists with the invoice's terms, the price and
    the currency are the plan's, the payer is the user the invoice was made for, and not banned, and
    a recurring plan is not bought by someone whose subscription still renews (`payer_subscribed`)."""
    parsed = parse_payload(payload)
    plan = find_plan(plans, parsed.plan) if parsed else None
    if parsed is None or plan is None:
        return Refusal.unknown_plan
    if (plan.days, plan.stars) != (parsed.days, parsed.stars):
        return Refusal.plan_changed
    if currency != CURRENCY:
        return Refusal.wrong_currency
    if amount != plan.stars:
        return Refusal.wrong_amount
    if payer_id != parsed.user_id:
        return Refusal.not_yours
    if payer_banned:
        return Refusal.banned
    if plan.recurring and payer_subscribed:
        return Refusal.already_subscribed
    return None


# ---- access --------------------------------------------------------------------------------------


def extended(current: datetime | None, status: str, now: datetime, days: int) -> datetime | None:
    """A payment's new expiry: `max(now, current) + days`. Permanent access stays permanent."""
    if current is None and status == "active":
        return None
    base = now if current is None else max(now, current)
    return base + timedelta(days=days)


def taken_back(current: datetime | None, now: datetime, days: int) -> datetime | None:
    """A refund's new expiry: the bought days come off, never below now (days already used are not
    taken twice). Permanent access stays permanent: a refund does not revoke what an admin gave."""
    if current is None:
        return None
    return max(now, current - timedelta(days=days))
