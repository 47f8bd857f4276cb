"""Every route of the web process in one list."""

from __future__ import annotations

from starlette.routing import Route

from api.health import health
from api.webhook import telegram_webhook


def routes() -> list[Route]:
    return [
        Route("/telegram/webhook", telegram_webhook, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
    ]
