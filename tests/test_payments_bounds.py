"""The payment buttons' data is bounded like every other callback (core/bounds.py): out-of-range
payment ids and malformed plan names never parse, get the "outdated button" answer, crash nothing and
write nothing; the factories refuse to build such data."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData

from db import users
from handlers.payments import callbacks as pcb
from tests.conftest import ADMIN_ID, ErrorRecords
from tests.harness import Telegram, TgUser
from tests.payments_helpers import PLANS

USER = 740_000_001
# Payment ids are BIGSERIAL row ids (1..2^63-1): 2^31 is in range (an unknown payment, tested elsewhere).
BOUNDARIES = ["0", "-1", str(2**63), str(-(2**63) - 1), str(10**19 - 1), "+5", "1_0", "5.0", "٣", ""]
BAD_PLANS = ["", "Week", "week!", "w" * 17, "week:7", "..", "wеek"]  # the last has a Cyrillic "е"

FACTORIES = sorted(
    (f for _, f in inspect.getmembers(pcb, inspect.isclass)
     if issubclass(f, CallbackData) and f is not CallbackData and f.__module__ == pcb.__name__),
    key=lambda f: f.__prefix__,
)
ID_FACTORIES = [f for f in FACTORIES if "id" in f.model_fields]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"plans": PLANS}


def test_every_factory_is_swept() -> None:
    assert {f.__prefix__ for f in FACTORIES} == {"pay_plans", "pay_buy", "pay_terms", "pay_cancel", "pay_cancel_ok",
                                                 "admin_refund", "admin_refund_ok"}
    assert {f.__prefix__ for f in ID_FACTORIES} == {"admin_refund", "admin_refund_ok"}


@pytest.mark.parametrize("factory", ID_FACTORIES, ids=lambda f: f.__prefix__)
@pytest.mark.parametrize("value", BOUNDARIES)
def test_out_of_range_ids_do_not_parse(factory: type[CallbackData], value: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        factory.unpack(f"{factory.__prefix__}:{value}")


@pytest.mark.parametrize("value", [0, -1, 2**63])
def test_factories_refuse_to_build_out_of_range(value: int) -> None:
    with pytest.raises(ValueError):
        pcb.AdminRefund(id=value)


@pytest.mark.parametrize("name", BAD_PLANS)
def test_malformed_plan_names_do_not_parse(name: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        pcb.PayBuy.unpack(f"pay_buy:{name}")


async def _rows(db) -> tuple[int, int]:
    cur = await db.execute("SELECT (SELECT count(*) FROM bot_users), (SELECT count(*) FROM payments)")
    row = await cur.fetchone()
    return int(row[0]), int(row[1])


async def test_forged_payment_buttons_through_the_webhook(tg: Telegram, db, errors: ErrorRecords) -> None:
    await users.set_access(db, USER, status="active", expires_at=datetime.now(UTC) + timedelta(days=3))
    before = await _rows(db)
    pressers = [TgUser(ADMIN_ID, first_name="Admin"), TgUser(USER, first_name="User")]
    forged = [f"{f.__prefix__}:{v}" for f in ID_FACTORIES for v in BOUNDARIES]
    forged += [f"pay_buy:{name}" for name in BAD_PLANS] + ["pay_plans:1", "pay_cancel_ok:1"]
    for presser in pressers:
        tg.api.clear_calls()
        for data in forged:
            await tg.press(presser, data)
        assert tg.toast_keys() == {"common.outdated_button"}, (presser.id, tg.toasts())
    assert await _rows(db) == before
    assert not tg.api.calls_of("refundStarPayment") and not tg.api.calls_of("sendInvoice")
    assert not errors.records
