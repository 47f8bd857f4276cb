"""The payment screens' callback ids, as `CallbackData` factories (bounded like handlers.callbacks).

A plan travels by name (names are what PLANS holds; an index would point at another plan after an
operator reorders them); the name is held to the plan-name pattern as it is read, and the handler
still looks it up in the current PLANS. Payment ids are row ids.
"""

from __future__ import annotations

from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import StringConstraints

from core.plans import PLAN_NAME
from handlers.callbacks import RowId

PlanName = Annotated[str, StringConstraints(pattern=PLAN_NAME.pattern)]


class PayPlans(CallbackData, prefix="pay_plans"):
    pass


class PayBuy(CallbackData, prefix="pay_buy"):
    plan: PlanName


class PayTerms(CallbackData, prefix="pay_terms"):
    pass


class PayCancel(CallbackData, prefix="pay_cancel"):
    pass


class PayCancelConfirm(CallbackData, prefix="pay_cancel_ok"):
    pass


class AdminRefund(CallbackData, prefix="admin_refund"):
    id: RowId


class AdminRefundConfirm(CallbackData, prefix="admin_refund_ok"):
    id: RowId
