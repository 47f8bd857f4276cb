"""Every route of the web process in one list."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from api.health import health
from api.metrics import metrics
from api.ops import ops_login, ops_logout, ops_page
from api.tick import tick_endpoint
from api.webhook import telegram_webhook


def routes() -> list[BaseRoute]:
    return [
        Route("/telegram/webhook", telegram_webhook, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/ops", ops_page, methods=["GET"]),
        Route("/ops/login", ops_login, methods=["POST"]),
        Route("/ops/logout", ops_logout, methods=["POST"]),
        Route("/tick", tick_endpoint, methods=["POST"]),
    ]
