"""aiogram routers, one per feature, assembled in `build_router`.

Each feature module exposes `make_router()`, building a fresh `Router(name=__name__)`: a router can
belong to one dispatcher only, and tests (and the benchmarks) build many dispatchers in one process.
"""

from __future__ import annotations

from aiogram import Router


def build_router() -> Router:
    # Imported here so that a worker importing `handlers.callbacks` does not pull every router in.
    from handlers import fallback

    root = Router(name="tgcast")
    # Feature routers first; the fallback must only see what none of them took.
    root.include_routers(fallback.make_router())
    return root
