"""Self-serve access paid in Telegram Stars (docs/payments.md).

`make_router(settings)` always takes what Telegram sends about payments (pre-checkout, payments,
refunds) and the renewal cancelling: a subscription sold earlier may still renew after PLANS is
emptied. The selling itself (plans, invoices, /buy, /paysupport, /terms) is there only with PLANS,
so without it no buy button or command exists anywhere. The admin's refunds from the user card are
handled by handlers/admin/refunds.py, whatever PLANS says.
"""

from __future__ import annotations

from aiogram import Router

from core.settings import Settings


def make_router(settings: Settings) -> Router:
    from handlers.payments import buy, flow

    router = Router(name=__name__)
    router.include_routers(flow.make_router())
    if settings.plans:
        router.include_router(buy.make_router())
    return router
