"""aiogram routers, one per feature, assembled in `build_router`.

Each feature module exposes `make_router()`, building a fresh `Router(name=__name__)`: a router can
belong to one dispatcher only, and tests (and the benchmarks) build many dispatchers in one process.
"""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    # Imported here so that a worker importing `handlers.callbacks` does not pull every router in.
    from handlers import (
        accounts,
        admin,
        broadcast,
        fallback,
        groups,
        guide,
        history,
        language,
        login,
        menu,
        message,
        pile_up,
    )

    root = Router(name="tgcast")
    # Feature routers first; the fallback must only see what none of them took. The menu's commands
    # come before the login router so that /start, /menu still work in the middle of a conversation.
    root.include_routers(
        menu.make_router(),
        admin.make_router(),  # before the conversations: its announcement state takes any content
        language.make_router(),
        login.make_router(),
        accounts.make_router(),
        groups.make_router(),
        broadcast.make_router(),
        pile_up.make_router(),
        message.make_router(),
        history.make_router(),
        guide.make_router(),
    )
    root.include_routers(fallback.make_router())
    return root
