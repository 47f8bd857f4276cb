"""Telegram-shaped updates built from what the sandbox page sends, and the checks on that input.

Everything the page posts is untrusted input: ids, names and languages are validated here before
they become an update, the same shapes Telegram would deliver to the webhook.
"""

from __future__ import annotations

import re
import time
from typing import Any

from core.content import utf16_len
from sandbox.entities import parse_html

LANGUAGES = ("uz", "ru", "en")
_USERNAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")
MAX_USER_ID = 10**13
# The bot's own messages as a callback's `message` (aiogram needs the bot as the sender).
_BOT_FROM_KEYS = ("id", "is_bot", "first_name", "username")


class BadInput(ValueError):
    """The page sent something that is not a valid request; the message says what."""


def sender(data: Any) -> dict[str, Any]:
    """The Telegram `User` the page acts as."""
    if not isinstance(data, dict):
        raise BadInput("user is missing")
    try:
        user_id = int(data.get("id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadInput("user id must be a number") from None
    if not 0 < user_id < MAX_USER_ID:
        raise BadInput("user id out of range")
    name = str(data.get("first_name") or "").strip()[:64] or f"User {user_id}"
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": name}
    language = data.get("language_code")
    if language in LANGUAGES:
        user["language_code"] = language
    username = str(data.get("username") or "").lstrip("@")
    if username:
        if not _USERNAME.match(username):
            raise BadInput("username may hold letters, digits and _ only")
        user["username"] = username
    return user


def text_content(markup: str) -> dict[str, Any]:
    """A text message from the composer's HTML: text plus entities, and /commands marked as such."""
    text, entities = parse_html(markup)
    if not text.strip():
        raise BadInput("the message is empty")
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}, *entities]
    return {"text": text, "entities": entities or None}


def caption_content(markup: str) -> dict[str, Any]:
    caption, entities = parse_html(markup)
    return {"caption": caption or None, "caption_entities": entities or None} if caption.strip() else {}


def media_content(kind: str, file_id: str, unique_id: str, size: int, file_name: str) -> dict[str, Any]:
    if kind == "photo":
        return {"photo": [{"file_id": file_id, "file_unique_id": unique_id, "width": 1280, "height": 720,
                           "file_size": size}]}
    if kind == "video":
        return {"video": {"file_id": file_id, "file_unique_id": unique_id, "width": 1280, "height": 720,
                          "duration": 5, "mime_type": "video/mp4", "file_size": size,
                          "file_name": file_name[:128] or "video.mp4"}}
    raise BadInput("only a photo or a video can be uploaded")


def contact_content(user: dict[str, Any], phone: str) -> dict[str, Any]:
    """The request-contact button shares the user's own card."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not 5 <= len(digits) <= 15:
        raise BadInput("phone must have 5 to 15 digits")
    return {"contact": {"phone_number": "+" + digits, "first_name": user["first_name"], "user_id": user["id"]}}


def message_update(update_id: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"update_id": update_id, "message": message}


def callback_update(
    update_id: int, callback_id: str, user: dict[str, Any], message: dict[str, Any], data: str
) -> dict[str, Any]:
    shown = {k: v for k, v in message.items() if k != "reply_markup"}
    markup = message.get("reply_markup")
    if isinstance(markup, dict) and markup.get("inline_keyboard"):
        shown["reply_markup"] = markup
    if isinstance(shown.get("from"), dict):
        shown["from"] = {k: v for k, v in shown["from"].items() if k in _BOT_FROM_KEYS}
    shown.setdefault("date", int(time.time()))
    return {
        "update_id": update_id,
        "callback_query": {
            "id": callback_id,
            "from": user,
            "chat_instance": f"sandbox-{user['id']}",
            "data": data,
            "message": shown,
        },
    }


def inline_callbacks(message: dict[str, Any]) -> set[str]:
    markup = message.get("reply_markup")
    if not isinstance(markup, dict):
        return set()
    return {
        str(button["callback_data"])
        for row in markup.get("inline_keyboard", [])
        for button in row
        if isinstance(button, dict) and "callback_data" in button
    }
