"""core/plans.py: PLANS parsing, the invoice payload, the pre-checkout rule and the expiry arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import plans
from core.plans import Payload, Plan, PlanError, Refusal, checkout_refusal, parse_payload, parse_plans

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
PLANS = parse_plans("week:7:250,month:30:750:recurring")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        (" , ", ()),
        ("week:7:250", (Plan("week", 7, 250),)),
        (" Week : 7 : 250 ", (Plan("week", 7, 250),)),
        ("month:30:750:recurring", (Plan("month", 30, 750, recurring=True),)),
        ("a:1:1,b_2:3650:10000", (Plan("a", 1, 1), Plan("b_2", 3650, 10000))),
    ],
)
def test_parse_plans(text: str | None, expected: tuple[Plan, ...]) -> None:
    assert parse_plans(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "week", "week:7", "week:7:250:monthly", "week:7:250:recurring:x", ":7:250", "wee-k:7:250",
        "w" * 17 + ":7:250", "week:0:250", "week:3651:250", "week:-7:250", "week:+7:250", "week:7.0:250",
        "week:7:0", "week:7:10001", "week:7:2_50", "week:٧:250", "week:7:250:recurring",
        "week:7:250,week:14:400", "a:1:1,b:1:1,c:1:1,d:1:1,e:1:1,f:1:1,g:1:1",
    ],
)
def test_parse_plans_refuses(text: str) -> None:
    with pytest.raises(PlanError):
        parse_plans(text)


def test_plans_print_as_their_setting() -> None:
    text = "week:7:250,month:30:750:recurring"
    assert ",".join(str(p) for p in parse_plans(text)) == text


def test_a_plan_validates_itself() -> None:
    with pytest.raises(PlanError):
        Plan("x", 14, 100, recurring=True)
    with pytest.raises(PlanError):
        Plan("X", 14, 100)


@given(plan=st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True), days=st.integers(1, 3650),
       stars=st.integers(1, 10000), user_id=st.integers(1, 2**63 - 1))
def test_payload_round_trip(plan: str, days: int, stars: int, user_id: int) -> None:
    payload = Payload(plan, days, stars, user_id)
    encoded = payload.encode()
    assert len(encoded.encode()) <= 128  # Telegram's limit for an invoice payload
    assert parse_payload(encoded) == payload


@pytest.mark.parametrize(
    "text",
    ["", "tgc1:week:7:250", "tgc2:week:7:250:1", "tgc1:Week:7:250:1", "tgc1:week:0:250:1", "tgc1:week:7:0:1",
     "tgc1:week:7:250:0", "tgc1:week:7:250:-1", "tgc1:week:7:250:9223372036854775808", "tgc1:week:7:250:1:x",
     "tgc1:week: 7:250:1"],
)
def test_parse_payload_refuses(text: str) -> None:
    assert parse_payload(text) is None


def _check(payload: str, *, amount: int = 250, currency: str = "XTR", payer: int = 5,
           banned: bool = False) -> Refusal | None:
    return checkout_refusal(PLANS, payload=payload, currency=currency, amount=amount, payer_id=payer,
                            payer_banned=banned)


def test_checkout_rule() -> None:
    week = plans.payload_for(PLANS[0], 5).encode()
    month = plans.payload_for(PLANS[1], 5).encode()
    assert _check(week) is None
    assert _check(month, amount=750) is None
    assert _check(week, amount=251) is Refusal.wrong_amount
    assert _check(week, currency="USD") is Refusal.wrong_currency
    assert _check(week, payer=6) is Refusal.not_yours
    assert _check(week, banned=True) is Refusal.banned
    assert _check("tgc1:year:365:2000:5", amount=2000) is Refusal.unknown_plan
    assert _check("garbage") is Refusal.unknown_plan
    assert _check("tgc1:week:7:200:5", amount=200) is Refusal.plan_changed
    assert _check("tgc1:week:8:250:5") is Refusal.plan_changed
    assert checkout_refusal((), payload=week, currency="XTR", amount=250, payer_id=5,
                            payer_banned=False) is Refusal.unknown_plan


def test_extended() -> None:
    assert plans.extended(NOW + timedelta(days=3), "active", NOW, 7) == NOW + timedelta(days=10)
    assert plans.extended(NOW - timedelta(days=3), "active", NOW, 7) == NOW + timedelta(days=7)
    assert plans.extended(NOW, "pending", NOW, 7) == NOW + timedelta(days=7)
    assert plans.extended(None, "pending", NOW, 7) == NOW + timedelta(days=7)
    assert plans.extended(None, "active", NOW, 7) is None  # permanent stays permanent


def test_taken_back() -> None:
    assert plans.taken_back(NOW + timedelta(days=10), NOW, 7) == NOW + timedelta(days=3)
    assert plans.taken_back(NOW + timedelta(days=2), NOW, 7) == NOW  # never below now
    assert plans.taken_back(NOW - timedelta(days=2), NOW, 7) == NOW
    assert plans.taken_back(None, NOW, 7) is None


@given(start=st.integers(-100, 100), days=st.integers(1, 3650))
def test_extend_then_take_back_never_ends_before_now(start: int, days: int) -> None:
    current = NOW + timedelta(days=start)
    after = plans.extended(current, "active", NOW, days)
    assert after is not None
    back = plans.taken_back(after, NOW, days)
    assert back == max(NOW, current)
