"""The super admin's tools: commands, panel, user cards and their refunds, announcements, statistics.

Every router here carries the `SuperAdminOnly` guard: the checks happen server-side on each update,
whatever the callback data says.
"""

from __future__ import annotations

from aiogram import Router


def make_router() -> Router:
    from handlers.admin import announce, commands, panel, refunds, stats

    router = Router(name=__name__)
    router.include_routers(commands.make_router(), panel.make_router(), refunds.make_router(),
                           announce.make_router(), stats.make_router())
    return router
