"""State and method semantics of the fake Telegram Bot API; the HTTP side lives in sandbox.botapi."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

BLOCKED = "Forbidden: bot was blocked by the user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
# Methods that put something on a chat's screen: the sandbox page redraws after them, and a chat that
# blocked the bot refuses them (BLOCKABLE).
SEND_METHODS = frozenset(
    m.lower()
    for m in (
        "sendMessage sendPhoto sendVideo sendDocument sendAnimation sendAudio sendVoice sendMediaGroup "
        "sendSticker sendPoll sendLocation sendContact sendInvoice copyMessage copyMessages forwardMessage "
        "forwardMessages editMessageText editMessageCaption editMessageMedia editMessageReplyMarkup"
    ).split()
)
BLOCKABLE = SEND_METHODS | {"sendchataction"}
# Defaults for the fields aiogram's models require on each media object.
MEDIA: dict[str, dict[str, Any]] = {
    "photo": {"width": 1280, "height": 720},
    "video": {"width": 1280, "height": 720, "duration": 5, "mime_type": "video/mp4"},
    "animation": {"width": 320, "height": 240, "duration": 3, "mime_type": "video/mp4"},
    "audio": {"duration": 60, "mime_type": "audio/mpeg"},
    "voice": {"duration": 3, "mime_type": "audio/ogg"},
    "document": {"mime_type": "application/octet-stream"},
}
_EXT = {"photo": ".jpg", "video": ".mp4", "animation": ".mp4", "audio": ".mp3", "voice": ".ogg"}


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    filename: str | None


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _drop_none(value: Any) -> Any:
    # aiogram strips None fields while JSON clients may send explicit nulls; both must compare equal.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _markup(params: dict[str, Any]) -> dict[str, Any] | None:
    markup = _drop_none(params.get("reply_markup"))
    return markup if isinstance(markup, dict) and markup else None


def _inline_markup(params: dict[str, Any]) -> dict[str, Any] | None:
    # Only inline keyboards can be edited in; an empty one means "remove".
    markup = _markup(params)
    return markup if _is_inline(markup) else None


def _public(msg: dict[str, Any]) -> dict[str, Any]:
    # Screens keep any keyboard (tests read reply keyboards there); a Message only carries inline ones.
    # Keys starting with "_" are the emulator's own notes (an invoice's payload), never sent.
    out = copy.deepcopy({k: v for k, v in msg.items() if not k.startswith("_")})
    if not _is_inline(out.get("reply_markup")):
        out.pop("reply_markup", None)
    return out


def _is_inline(markup: Any) -> bool:
    return isinstance(markup, dict) and bool(markup.get("inline_keyboard"))


class BotState:
    """Chats, files and bot settings, and what each method does to them (sandbox.botapi.FakeBotAPI
    adds the recorder and fault injection).

    Deliberately lenient where strictness would only burden tests: unknown file_ids and copies of
    messages the fake never saw are accepted; fault injection simulates those errors instead.
    """

    def __init__(self) -> None:
        # The server thread writes while the test thread reads; the condition also backs wait_for().
        self._cond = threading.Condition(threading.RLock())
        self._handlers: dict[str, Callable[[str, dict[str, Any], dict[str, Upload]], Any]] = {
            "getme": lambda token, p, u: self._bot_user(token, full=True),
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_text,
            "editmessagecaption": self._edit_caption,
            "editmessagereplymarkup": self._edit_markup,
            "editmessagemedia": self._edit_media,
            "deletemessage": self._delete,
            "sendmediagroup": self._send_media_group,
            "copymessage": partial(self._copy, forward=False),
            "forwardmessage": partial(self._copy, forward=True),
            "getfile": self._get_file,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_commands,
            "getmycommands": lambda token, p, u: self._commands.get(self._commands_key(token, p), []),
            "getchat": self._get_chat,
            "getupdates": lambda token, p, u: [],
        }
        for kind in MEDIA:
            self._handlers[f"send{kind}"] = partial(self._send_media, kind)
        self._reset_state()

    def _reset_state(self) -> None:
        with self._cond:
            self._messages: dict[int, dict[int, dict[str, Any]]] = {}
            self._next_id: dict[int, int] = {}
            self._usernames: dict[str, int] = {}
            self._files: dict[str, StoredFile] = {}
            self._file_seq = itertools.count(1)
            self._paths: dict[str, StoredFile] = {}
            self._webhooks: dict[str, dict[str, Any]] = {}
            self._commands: dict[str, list[Any]] = {}
            # Tombstones of deleted messages (id, side, dates; never the content: it may be a code or
            # a password the bot deleted on purpose), so a client can show "message deleted".
            self._deleted: dict[int, dict[int, dict[str, Any]]] = {}

    def dispatch(self, token: str, name: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        """Run lower-cased method `name`; unknown methods succeed with True. Raises ApiError."""
        handler = self._handlers.get(name)
        with self._cond:
            return copy.deepcopy(handler(token, params, uploads)) if handler else True

    def _stored(self, chat: int, message_id: Any) -> dict[str, Any] | None:
        return self._messages.get(chat, {}).get(message_id) if isinstance(message_id, int) else None

    # ---- chats and messages --------------------------------------------------------------------

    def _chat_key(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value)
        if text.lstrip("-").isdigit():
            return int(text)
        # "@channel" targets get a stable fake id so results can carry an integer chat.id.
        return self._usernames.setdefault(text.lower(), -1001000000000 - len(self._usernames))

    def _required_chat(self, params: dict[str, Any], key: str = "chat_id") -> int:
        if params.get(key) in (None, ""):
            raise ApiError(400, f"Bad Request: {key} is empty")
        return self._chat_key(params[key])

    @staticmethod
    def _bot_user(token: str, full: bool = False) -> dict[str, Any]:
        prefix = token.split(":", 1)[0]
        user: dict[str, Any] = {
            "id": int(prefix) if prefix.isdigit() else 1,
            "is_bot": True,
            "first_name": "tgcast test bot",
            "username": "tgcast_test_bot",
        }
        if full:
            user |= {
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        return user

    @staticmethod
    def _chat_obj(chat: int) -> dict[str, Any]:
        if chat > 0:
            return {"id": chat, "type": "private", "first_name": f"User {chat}"}
        return {"id": chat, "type": "supergroup", "title": f"Chat {chat}"}

    def _new_message(self, token: str, chat: int, content: dict[str, Any]) -> dict[str, Any]:
        message_id = self._next_id[chat] = self._next_id.get(chat, 0) + 1
        msg = {
            "message_id": message_id,
            "from": self._bot_user(token),
            "chat": self._chat_obj(chat),
            "date": int(time.time()),
            **{k: v for k, v in content.items() if v not in (None, [], {})},
        }
        self._messages.setdefault(chat, {})[message_id] = msg
        return _public(msg)

    def _target(self, params: dict[str, Any], action: str) -> dict[str, Any] | None:
        if params.get("inline_message_id"):
            return None
        chat = self._required_chat(params)
        msg = self._stored(chat, params.get("message_id"))
        if msg is None:
            raise ApiError(400, f"Bad Request: message to {action} not found")
        return msg

    @staticmethod
    def _apply_edit(
        msg: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...], params: dict[str, Any]
    ) -> dict[str, Any]:
        markup = _inline_markup(params)
        old_markup = msg.get("reply_markup")
        old_inline = old_markup if _is_inline(old_markup) else None
        if all(msg.get(k) == new.get(k) for k in keys) and old_inline == markup:
            raise ApiError(400, NOT_MODIFIED)
        for key in keys:
            msg.pop(key, None)
        msg.update({k: v for k, v in new.items() if v not in (None, [])})
        # An edit replaces (or drops) the inline keyboard; a reply keyboard is not the message's to lose.
        if markup is not None:
            msg["reply_markup"] = markup
        elif old_inline is not None:
            del msg["reply_markup"]
        msg["edit_date"] = int(time.time())
        return _public(msg)

    @staticmethod
    def _caption(params: dict[str, Any]) -> dict[str, Any]:
        return {"caption": params.get("caption") or None, "caption_entities": params.get("caption_entities")}

    def _send_message(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat = self._required_chat(params)
        if not params.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        content = {
            "text": str(params["text"]),
            "entities": params.get("entities"),
            "link_preview_options": params.get("link_preview_options"),
            "reply_markup": _markup(params),
        }
        return self._new_message(token, chat, content)

    def _edit_text(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        msg = self._target(params, "edit")
        if msg is None:
            return True
        if "text" not in msg:
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        if not params.get("text"):
            raise ApiError(400, "Bad Request: message text is empty")
        new = {"text": str(params["text"]), "entities": params.get("entities") or None}
        return self._apply_edit(msg, new, ("text", "entities"), params)

    def _edit_caption(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        msg = self._target(params, "edit")
        if msg is None:
            return True
        if not any(kind in msg for kind in MEDIA):
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        return self._apply_edit(msg, self._caption(params), ("caption", "caption_entities"), params)

    def _edit_markup(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        msg = self._target(params, "edit")
        return True if msg is None else self._apply_edit(msg, {}, (), params)

    def _edit_media(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        msg = self._target(params, "edit")
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") not in MEDIA:
            raise ApiError(400, "Bad Request: can't parse InputMedia")
        new = self._media_content(media["type"], media.get("media"), uploads) | self._caption(media)
        if msg is None:
            return True
        return self._apply_edit(msg, new, (*MEDIA, "caption", "caption_entities"), params)

    def _delete(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        msg = self._target(params, "delete")
        if msg is not None:
            del self._messages[msg["chat"]["id"]][msg["message_id"]]
            self._deleted.setdefault(msg["chat"]["id"], {})[msg["message_id"]] = {
                "message_id": msg["message_id"],
                "date": msg["date"],
                "from": msg.get("from"),
                "deleted_date": int(time.time()),
            }
        return True

    def _copy(self, token: str, params: dict[str, Any], uploads: dict[str, Upload], forward: bool) -> Any:
        chat = self._required_chat(params)
        source_chat = self._required_chat(params, "from_chat_id")
        source = self._stored(source_chat, params.get("message_id"))
        keys = ("text", "entities", "caption", "caption_entities", *MEDIA)
        if source is None:
            content: dict[str, Any] = {"text": f"copy of {source_chat}/{params.get('message_id')}"}
        else:
            content = {k: copy.deepcopy(source[k]) for k in keys if k in source}
        if not forward:
            if "caption" in params and any(kind in content for kind in MEDIA):
                content |= self._caption(params)
            content["reply_markup"] = _markup(params)
        msg = self._new_message(token, chat, content)
        return msg if forward else {"message_id": msg["message_id"]}

    # ---- files ---------------------------------------------------------------------------------

    def _store_file(
        self, kind: str, data: bytes, filename: str | None, file_id: str | None = None
    ) -> StoredFile:
        n = next(self._file_seq)
        unique = f"AQAD{n:06d}"
        file_id = file_id or f"{kind[:2].upper()}ACAgI{n:06d}{unique}"
        ext = _EXT.get(kind) or (("." + filename.rsplit(".", 1)[-1]) if filename and "." in filename else "")
        stored = StoredFile(file_id, unique, data, f"{kind}s/file_{n}{ext}", filename)
        self._files[file_id] = self._paths[stored.file_path] = stored
        return stored

    def _resolve_file(self, kind: str, ref: Any, uploads: dict[str, Upload]) -> StoredFile:
        if isinstance(ref, str) and ref.startswith("attach://"):
            upload = uploads.get(ref[9:])
            if upload is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return self._store_file(kind, upload.data, upload.filename)
        if not isinstance(ref, str) or not ref:
            raise ApiError(400, f"Bad Request: there is no {kind} in the request")
        if ref in self._files:
            return self._files[ref]
        if ref.startswith(("http://", "https://")):
            return self._store_file(kind, b"", ref.rsplit("/", 1)[-1])
        return self._store_file(kind, b"", None, file_id=ref)

    def _media_content(self, kind: str, ref: Any, uploads: dict[str, Upload]) -> dict[str, Any]:
        stored = self._resolve_file(kind, ref, uploads)
        obj = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            **MEDIA[kind],
        }
        if kind == "photo":
            return {"photo": [obj]}
        if stored.filename and kind != "voice":
            obj["file_name"] = stored.filename
        return {kind: obj}

    def _send_media(self, kind: str, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat = self._required_chat(params)
        content = self._media_content(kind, params.get(kind), uploads) | self._caption(params)
        content["reply_markup"] = _markup(params)
        return self._new_message(token, chat, content)

    def _send_media_group(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat = self._required_chat(params)
        media = params.get("media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise ApiError(400, "Bad Request: wrong number of media specified")
        group = f"{time.time_ns()}"
        messages = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in MEDIA:
                raise ApiError(400, "Bad Request: can't parse InputMedia")
            content = self._media_content(item["type"], item.get("media"), uploads) | self._caption(item)
            messages.append(self._new_message(token, chat, content | {"media_group_id": group}))
        return messages

    def _get_file(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    # ---- bot settings --------------------------------------------------------------------------

    def _set_webhook(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        if not params.get("url"):
            self._webhooks.pop(token, None)
            return True
        self._webhooks.pop(token, None)  # re-insert so webhook() without a token sees the latest
        self._webhooks[token] = {
            "url": params["url"],
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": params.get("max_connections") or 40,
            "ip_address": params.get("ip_address"),
            "has_custom_certificate": "certificate" in params,
        }
        return True

    def _delete_webhook(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        self._webhooks.pop(token, None)
        return True

    def _get_webhook_info(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        hook = self._webhooks.get(token)
        if hook is None:
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        info = {k: v for k, v in hook.items() if k != "secret_token" and v is not None}
        # Not a real Telegram field (it never reveals the secret); aiogram keeps unknown fields.
        return info | {"pending_update_count": 0, "has_secret_token": bool(hook["secret_token"])}

    @staticmethod
    def _commands_key(token: str, params: dict[str, Any]) -> str:
        scope = json.dumps(params.get("scope") or {"type": "default"}, sort_keys=True)
        return f"{token}|{scope}|{params.get('language_code') or ''}"

    def _set_commands(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        self._commands[self._commands_key(token, params)] = list(params.get("commands") or [])
        return True

    def _get_chat(self, token: str, params: dict[str, Any], uploads: dict[str, Upload]) -> Any:
        chat = self._chat_obj(self._required_chat(params))
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return chat | {"accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

