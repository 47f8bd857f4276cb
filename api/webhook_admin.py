"""Registering the webhook with Telegram (the `set-webhook` / `delete-webhook` commands)."""

from __future__ import annotations

from core.settings import Settings, SettingsError
from handlers.dispatcher import build_bot

# Only what the routers handle: anything else would cost a request for nothing. A Stars payment
# needs the pre-checkout query answered (docs/payments.md); it never comes without an invoice.
ALLOWED_UPDATES = ["message", "callback_query", "pre_checkout_query"]
WEBHOOK_PATH = "/telegram/webhook"


def webhook_target(settings: Settings, url: str | None) -> str:
    base = url or settings.webhook_url
    if not base:
        raise SettingsError("setting WEBHOOK_URL is missing (or pass --url)")
    if not base.startswith("https://") and not settings.bot_api_base:
        raise SettingsError("setting WEBHOOK_URL is malformed: Telegram only calls https:// URLs")
    return base if base.rstrip("/").endswith(WEBHOOK_PATH) else base.rstrip("/") + WEBHOOK_PATH


async def set_webhook(settings: Settings, *, url: str | None = None, max_connections: int = 40) -> str:
    target = webhook_target(settings, url)
    if settings.webhook_secret is None:
        raise SettingsError("setting WEBHOOK_SECRET is missing")
    bot = build_bot(settings)
    try:
        await bot.set_webhook(
            target,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            max_connections=max_connections,
            drop_pending_updates=False,
        )
        info = await bot.get_webhook_info()
    finally:
        await bot.session.close()
    return f"webhook set: {info.url} (pending updates: {info.pending_update_count})"


async def delete_webhook(settings: Settings, *, drop_pending: bool = False) -> str:
    bot = build_bot(settings)
    try:
        await bot.delete_webhook(drop_pending_updates=drop_pending)
    finally:
        await bot.session.close()
    return "webhook deleted"
