"""Runtime notices (docs/bot.md, "Runtime notices"): sent through the workers' Bot API client, each
cause at most once, in the user's language."""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from core.i18n import person_language, t
from core.settings import Settings
from db import notices, users
from worker.botapi import BotApiClient, BotApiError

log = logging.getLogger(__name__)


async def notify(
    conn: AsyncConnection, botapi: BotApiClient, settings: Settings, owner_id: int, *,
    cause: str, ref: str = "", key: str, keyed: dict[str, str] | None = None,
    button: tuple[str, str] | None = None, **values: Any,
) -> bool:
    """Send `key` to the owner unless this (cause, ref) was already sent. Values must already be
    HTML-escaped; `keyed` values are catalog keys, translated in the user's language too. `button` is
    one inline button under the notice: (catalog key of its label, its callback data — the same string
    the bot's `CallbackData` factory packs, since workers do not load aiogram).
    Returns whether it was sent now."""
    if not await notices.claim(conn, owner_id, cause, ref):
        return False
    user = await users.get(conn, owner_id)
    lang = person_language(user, settings.default_language)
    try:
        for name, value_key in (keyed or {}).items():
            values[name] = t(lang, value_key)
        markup = None
        if button is not None:
            markup = {"inline_keyboard": [[{"text": t(lang, button[0]), "callback_data": button[1]}]]}
        await botapi.send_message(owner_id, t(lang, key, **values), reply_markup=markup)
    except BotApiError as exc:
        if not exc.blocked:
            # Not the user's choice (Telegram trouble): let a later occurrence try again.
            await notices.forget(conn, owner_id, cause, ref)
        log.warning("notice %s to %s not delivered: %s", cause, owner_id, exc.error_code)
        return False
    except Exception as exc:  # the Bot API unreachable must not fail a send batch
        await notices.forget(conn, owner_id, cause, ref)
        log.warning("notice %s to %s not delivered: %s", cause, owner_id, type(exc).__name__)
        return False
    return True
