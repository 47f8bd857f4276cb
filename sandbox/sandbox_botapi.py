"""The sandbox's Bot API: the fake one, plus what a Telegram client would see of each chat.

`SandboxBotAPI` parses `parse_mode=HTML` into entities the way Telegram does (so the page shows
formatting, and the bot gets back the text a real client would), keeps the toasts each chat was
shown, and notes which chats changed. `ChatStore` snapshots changed chats (and files) into Redis and
loads them back at start: the emulator keeps chats in memory, and a restarted web process must not
lose them.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import time
from collections import deque
from typing import Any

from redis.asyncio import Redis

from sandbox.botapi import FakeBotAPI
from sandbox.botapi_state import SEND_METHODS, ApiError, StoredFile, Upload
from sandbox.entities import MarkupError, parse_html

_TEXT_METHODS = frozenset({"sendmessage", "editmessagetext"})
_CAPTION_METHODS = frozenset(
    {"sendphoto", "sendvideo", "senddocument", "sendanimation", "sendaudio", "sendvoice", "copymessage",
     "editmessagecaption"}
)
_CHANGES = SEND_METHODS | {"deletemessage"}
_TOASTS_KEPT = 50
_FILE_LIMIT = 20 * 1024 * 1024
_FILE_NUMBER = re.compile(r"/file_(\d+)")


def _parse_field(params: dict[str, Any], field: str, entities_field: str) -> None:
    mode = str(params.pop("parse_mode", "") or "")
    value = params.get(field)
    if mode.lower() != "html" or not isinstance(value, str) or params.get(entities_field):
        return
    try:
        text, entities = parse_html(value)
    except MarkupError as e:
        raise ApiError(400, f"Bad Request: can't parse entities: {e}") from None
    params[field] = text
    params[entities_field] = entities


class SandboxBotAPI(FakeBotAPI):
    def __init__(self) -> None:
        super().__init__()
        self._dirty_chats: set[int] = set()
        self._dirty_files: set[str] = set()
        self._toasts: dict[int, deque[dict[str, Any]]] = {}
        self._callback_chats: dict[str, int] = {}
        self._toast_seq = 0
        self._file_floor = 0

    def handle(
        self, token: str, method: str, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> tuple[int, dict[str, Any]]:
        name = method.lower()
        params = dict(params)
        try:
            if name in _TEXT_METHODS:
                _parse_field(params, "text", "entities")
            elif name in _CAPTION_METHODS:
                _parse_field(params, "caption", "caption_entities")
            elif name == "editmessagemedia" and isinstance(params.get("media"), dict):
                media = params["media"] = dict(params["media"])
                _parse_field(media, "caption", "caption_entities")
        except ApiError as e:
            return e.code, e.body()
        status, answer = super().handle(token, method, params, uploads)
        if status == 200:
            self._note(name, params)
        return status, answer

    def _note(self, name: str, params: dict[str, Any]) -> None:
        with self._cond:
            if name in _CHANGES and params.get("chat_id") not in (None, ""):
                self._dirty_chats.add(self._chat_key(params["chat_id"]))
            if name == "answercallbackquery":
                chat = self._callback_chats.pop(str(params.get("callback_query_id", "")), None)
                if chat is not None and params.get("text"):
                    self._toast_seq += 1
                    self._toasts.setdefault(chat, deque(maxlen=_TOASTS_KEPT)).append(
                        {"id": self._toast_seq, "text": str(params["text"]),
                         "alert": bool(params.get("show_alert")), "at": time.time()}
                    )

    def _store_file(self, kind: str, data: bytes, filename: str | None, file_id: str | None = None) -> StoredFile:
        stored = super()._store_file(kind, data, filename, file_id)
        self._dirty_files.add(stored.file_id)
        return stored

    # ---- what the sandbox page uses ---------------------------------------------------------------

    def add_incoming(self, chat_id: int, sender: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """A message the user wrote to the bot: it takes the chat's next message id, as in Telegram,
        so the bot can delete or copy it."""
        with self._cond:
            message_id = self._next_id[chat_id] = self._next_id.get(chat_id, 0) + 1
            chat = {"id": chat_id, "type": "private", "first_name": sender.get("first_name", "")}
            msg = {"message_id": message_id, "from": sender, "chat": chat, "date": int(time.time()),
                   **{k: v for k, v in content.items() if v not in (None, [], {})}}
            self._messages.setdefault(chat_id, {})[message_id] = msg
            self._dirty_chats.add(chat_id)
            return copy.deepcopy(msg)

    def deleted(self, chat_id: int) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(list(self._deleted.get(chat_id, {}).values()))

    def file_data(self, file_id: str) -> bytes | None:
        with self._cond:
            stored = self._files.get(file_id)
            return stored.data if stored else None

    def export_chat(self, chat_id: int) -> dict[str, Any]:
        with self._cond:
            return {
                "messages": copy.deepcopy(list(self._messages.get(chat_id, {}).values())),
                "deleted": copy.deepcopy(list(self._deleted.get(chat_id, {}).values())),
                "next_id": self._next_id.get(chat_id, 0),
            }

    def import_chat(self, chat_id: int, snapshot: dict[str, Any]) -> None:
        with self._cond:
            self._messages[chat_id] = {int(m["message_id"]): m for m in snapshot.get("messages", [])}
            self._deleted[chat_id] = {int(m["message_id"]): m for m in snapshot.get("deleted", [])}
            self._next_id[chat_id] = max(int(snapshot.get("next_id", 0)), self._next_id.get(chat_id, 0))

    def export_file(self, file_id: str) -> StoredFile | None:
        with self._cond:
            return self._files.get(file_id)

    def import_file(self, stored: StoredFile) -> None:
        with self._cond:
            self._files[stored.file_id] = self._paths[stored.file_path] = stored
            # New file ids and paths are numbered; continue after the restored ones, never reuse them.
            numbered = _FILE_NUMBER.search(stored.file_path)
            if numbered:
                self._file_floor = max(self._file_floor, int(numbered.group(1)))
                self._file_seq = itertools.count(self._file_floor + 1)

    def expect_callback(self, callback_query_id: str, chat_id: int) -> None:
        """The answer to this callback query is a toast in this chat."""
        with self._cond:
            self._callback_chats[callback_query_id] = chat_id

    def add_toast(self, chat_id: int, text: str, *, alert: bool) -> None:
        """A popup Telegram itself shows (a payment the bot refused at pre-checkout)."""
        with self._cond:
            self._toast_seq += 1
            self._toasts.setdefault(chat_id, deque(maxlen=_TOASTS_KEPT)).append(
                {"id": self._toast_seq, "text": text, "alert": alert, "at": time.time()})

    def mark_invoice_paid(self, chat_id: int, message_id: int, charge_id: str) -> None:
        with self._cond:
            msg = self._stored(chat_id, message_id)
            if msg is not None and isinstance(msg.get("_pay"), dict):
                msg["_pay"]["paid"] = charge_id
                self._dirty_chats.add(chat_id)

    def toasts(self, chat_id: int) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._toasts.get(chat_id, ()))

    def take_dirty(self) -> tuple[set[int], set[str]]:
        with self._cond:
            chats, files = self._dirty_chats, self._dirty_files
            self._dirty_chats, self._dirty_files = set(), set()
            return chats, files


class ChatStore:
    """Redis snapshots of the sandbox chats: `{prefix}sandbox:chat:<id>` and `{prefix}sandbox:file:<id>`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.p = f"{prefix}sandbox:"

    async def persist(self, api: SandboxBotAPI) -> None:
        chats, files = api.take_dirty()
        if not chats and not files:
            return
        pipe = self.redis.pipeline(transaction=False)
        for chat in chats:
            pipe.set(f"{self.p}chat:{chat}", json.dumps(api.export_chat(chat)))
            pipe.sadd(f"{self.p}chats", chat)
        for file_id in files:
            stored = api.export_file(file_id)
            if stored is None or len(stored.data) > _FILE_LIMIT:
                continue
            record = {"file_unique_id": stored.file_unique_id, "file_path": stored.file_path,
                      "filename": stored.filename, "data": base64.b64encode(stored.data).decode()}
            pipe.set(f"{self.p}file:{file_id}", json.dumps(record))
            pipe.sadd(f"{self.p}files", file_id)
        await pipe.execute()

    async def restore(self, api: SandboxBotAPI) -> int:
        """Load every saved chat and file; returns the number of chats."""
        chats = [int(c) for c in await self.redis.smembers(f"{self.p}chats")]  # type: ignore[misc]
        for chat in chats:
            raw = await self.redis.get(f"{self.p}chat:{chat}")
            if raw:
                api.import_chat(chat, json.loads(raw))
        for file_id in await self.redis.smembers(f"{self.p}files"):  # type: ignore[misc]
            raw = await self.redis.get(f"{self.p}file:{file_id.decode()}")
            if raw:
                record = json.loads(raw)
                api.import_file(StoredFile(file_id.decode(), record["file_unique_id"],
                                           base64.b64decode(record["data"]), record["file_path"],
                                           record["filename"]))
        api.take_dirty()
        return len(chats)
