"""Driving the bot through its webhook the way Telegram does, and reading what it showed.

`Telegram` builds updates (text, commands, contacts, photos, callback presses) for a given user,
posts them to `/telegram/webhook` with the secret, and reads the fake Bot API's record to tell which
screen was shown: `screen(chat)` gives the last message's text, its message keys (matched against the
catalogs, so tests never depend on wording) and its keyboard's callback ids.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import httpx

from sandbox.botapi import Call, FakeBotAPI
from sandbox.botapi_state import SEND_METHODS
from tests.catalogs import catalog

WEBHOOK_SECRET = "test-webhook-secret-0123456789"
_update_ids = itertools.count(1_000_000)
_message_ids = itertools.count(500)


@cache
def _key_patterns(lang: str) -> list[tuple[str, re.Pattern[str]]]:
    patterns = []
    for key, forms in catalog(lang).items():
        for template in forms:  # a plural message is recognised by any of its forms
            literal = re.sub(r"\{[^{}]*\}", "", template)
            if len(literal.strip()) < 4:
                continue  # too little fixed text to recognise reliably
            # HTML tags are rendered away by Telegram but the fake API keeps them; match either way.
            parts = [re.escape(p) for p in re.split(r"\{[^{}]*\}", template)]
            patterns.append((key, re.compile("(?s)" + ".*?".join(parts))))
    return patterns


def sent_to(api: FakeBotAPI, chat_id: int) -> list[Call]:
    """Every call that put something on one chat's screen, in order."""
    return [c for c in api.calls if c.method.lower() in SEND_METHODS
            and str(c.params.get("chat_id", "")) == str(chat_id)]


def message_keys(text: str, lang: str = "en") -> set[str]:
    return {key for key, pattern in _key_patterns(lang) if pattern.search(text)}


@dataclass
class Screen:
    text: str
    keys: set[str]
    callbacks: list[str]
    reply_buttons: list[dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)

    def has(self, *keys: str) -> bool:
        return all(k in self.keys for k in keys)


def _callbacks(markup: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(markup, dict):
        return [], []
    callbacks = [
        b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row if "callback_data" in b
    ]
    reply = [b if isinstance(b, dict) else {"text": b} for row in markup.get("keyboard", []) for b in row]
    return callbacks, reply


@dataclass
class TgUser:
    id: int
    first_name: str = "Test"
    username: str | None = None
    language_code: str | None = "en"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.username:
            d["username"] = self.username
        if self.language_code:
            d["language_code"] = self.language_code
        return d


class Telegram:
    def __init__(self, client: httpx.AsyncClient, api: FakeBotAPI, api_base: str, bot_token: str) -> None:
        self.client = client
        self.api = api
        self.api_base = api_base
        self.bot_token = bot_token

    # ---- sending updates ------------------------------------------------------------------------

    async def post_update(self, update: dict[str, Any], *, secret: str | None = WEBHOOK_SECRET) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        response = await self.client.post("/telegram/webhook", json=update, headers=headers)
        if response.status_code == 200:
            await self._execute_inline_reply(response)
        return response

    async def _execute_inline_reply(self, response: httpx.Response) -> None:
        """Telegram executes a method returned in the webhook response; so does the harness."""
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and "method" in body:
            params = {k: v for k, v in body.items() if k != "method"}
            async with httpx.AsyncClient(base_url=self.api_base) as api:
                await api.post(f"/bot{self.bot_token}/{body['method']}", json=params)

    def _message(self, user: TgUser, **content: Any) -> dict[str, Any]:
        return {
            "update_id": next(_update_ids),
            "message": {
                "message_id": next(_message_ids),
                "date": int(time.time()),
                "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                "from": user.as_dict(),
                **content,
            },
        }

    async def send(self, user: TgUser, text: str, entities: list[dict[str, Any]] | None = None) -> httpx.Response:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split()[0]
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if entities:
            content["entities"] = entities
        response = await self.post_update(self._message(user, **content))
        assert response.status_code == 200, response.text
        return response

    async def send_content(self, user: TgUser, **content: Any) -> httpx.Response:
        """Any message content: photo=[...], video={...}, sticker={...}, contact={...}, caption=..."""
        response = await self.post_update(self._message(user, **content))
        assert response.status_code == 200, response.text
        return response

    async def share_contact(self, user: TgUser, phone: str, *, owner_id: int | None = None) -> httpx.Response:
        contact = {"phone_number": phone, "first_name": user.first_name, "user_id": owner_id or user.id}
        return await self.send_content(user, contact=contact)

    async def press(self, user: TgUser, data: str, *, message_id: int | None = None) -> httpx.Response:
        message = self.api.messages(user.id)[-1] if message_id is None and self.api.messages(user.id) else None
        mid = message_id or (message["message_id"] if message else next(_message_ids))
        update = {
            "update_id": next(_update_ids),
            "callback_query": {
                "id": str(next(_update_ids)),
                "from": user.as_dict(),
                "chat_instance": "1",
                "data": data,
                "message": {
                    "message_id": mid,
                    "date": int(time.time()),
                    "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                    "from": {"id": 123456, "is_bot": True, "first_name": "bot"},
                    "text": (message or {}).get("text", "menu"),
                },
            },
        }
        response = await self.post_update(update)
        assert response.status_code == 200, response.text
        return response

    # ---- reading what the bot did -------------------------------------------------------------

    def screen(self, user: TgUser | int, lang: str = "en") -> Screen:
        """The message the bot touched last in this chat: the newest one sent, or the one edited."""
        chat_id = user if isinstance(user, int) else user.id
        messages = self.api.messages(chat_id)
        assert messages, f"the bot showed nothing to {chat_id}"
        last = messages[-1]
        for call in reversed(sent_to(self.api, chat_id)):
            if call.method.startswith("edit") and "message_id" in call.params:
                last = self.api.message(chat_id, int(call.params["message_id"])) or last
            break
        text = last.get("text") or last.get("caption") or ""
        callbacks, reply = _callbacks(last.get("reply_markup"))
        return Screen(text, message_keys(text, lang), callbacks, reply, last)

    def toasts(self) -> list[str]:
        return [c.params.get("text", "") for c in self.api.calls_of("answerCallbackQuery")]

    def toast_keys(self, lang: str = "en") -> set[str]:
        keys: set[str] = set()
        for text in self.toasts():
            keys |= message_keys(text, lang)
        return keys

    def all_keys(self, user: TgUser | int, lang: str = "en") -> set[str]:
        """Keys of every message the bot sent this chat (for flows that send several)."""
        chat_id = user if isinstance(user, int) else user.id
        keys: set[str] = set()
        for m in self.api.messages(chat_id):
            keys |= message_keys(m.get("text") or m.get("caption") or "", lang)
        return keys
