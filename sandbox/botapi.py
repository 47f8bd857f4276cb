"""Fake Telegram Bot API server for tests and the sandbox.

Point aiogram at it with ``TelegramAPIServer.from_base(server.base_url)``; every call is recorded on
``server.api`` (a FakeBotAPI) and answered the way Telegram would.
"""

from __future__ import annotations

import copy
import email
import email.message
import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.botapi_payments import PaymentsState
from sandbox.botapi_state import (
    BLOCKABLE,
    BLOCKED,
    NOT_MODIFIED,
    ApiError,
    BotState,
    Upload,
)
from sandbox.live_server import LiveServer

__all__ = ["BLOCKED", "NOT_MODIFIED", "Call", "FakeBotAPI", "FakeBotAPIServer", "Upload", "create_app"]

DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: BLOCKED,
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    500: "Internal Server Error",
    502: "Bad Gateway",
}

# Form clients (aiogram) send these as JSON strings; JSON-body clients may do either.
JSON_FIELDS = frozenset(
    "reply_markup entities caption_entities media allowed_updates link_preview_options reply_parameters "
    "commands scope message_ids reaction options permissions results prices".split()
)
INT_FIELDS = frozenset(
    "chat_id from_chat_id message_id message_thread_id reply_to_message_id user_id max_connections "
    "offset limit timeout cache_time duration width height subscription_period".split()
)
BOOL_FIELDS = frozenset(
    "disable_notification protect_content show_alert drop_pending_updates has_spoiler supports_streaming "
    "disable_web_page_preview allow_sending_without_reply show_caption_above_media "
    "disable_content_type_detection allow_paid_broadcast ok is_canceled".split()
)


@dataclass(frozen=True)
class Call:
    token: str
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic()


@dataclass
class _Fault:
    method: str
    error_code: int
    description: str
    retry_after: int | None
    remaining: int
    chat: int | None


def _for_record(value: Any, uploads: dict[str, Upload]) -> Any:
    if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
        up = uploads[value[9:]]
        return {"filename": up.filename, "size": len(up.data)}
    if isinstance(value, dict):
        return {k: _for_record(v, uploads) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_record(v, uploads) for v in value]
    return value


class FakeBotAPI(PaymentsState, BotState):
    """Records every call and answers like Telegram (Stars payments too); fault injection for error paths."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        super().__init__()

    def clear(self) -> None:
        """Forget everything: calls, chat screens, files, faults, blocks and webhooks.

        A session-wide server is cleared between tests, and a leftover block_chat() or fail_next()
        would leak into the next one; clear_calls() keeps the state and drops only the log."""
        with self._cond:
            self._calls.clear()
            self._faults.clear()
            self._blocked.clear()
            self._reset_state()

    @property
    def calls(self) -> list[Call]:
        with self._cond:
            return list(self._calls)

    def clear_calls(self) -> None:
        with self._cond:
            self._calls.clear()

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if c.method.lower() == method.lower()]

    def last(self, method: str) -> Call | None:
        found = self.calls_of(method)
        return found[-1] if found else None

    def wait_for(self, method: str, count: int = 1, timeout: float = 5.0) -> list[Call]:
        """Block until `count` calls of `method` were recorded (for calls made by other threads or
        processes; from a coroutine sharing a loop with the caller this would just stall it)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.calls_of(method)) >= count, timeout)
            return self.calls_of(method)

    def messages(self, chat_id: int | str) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(list(self._messages.get(self._chat_key(chat_id), {}).values()))

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        with self._cond:
            msg = self._messages.get(self._chat_key(chat_id), {}).get(message_id)
            return copy.deepcopy(msg)

    def add_message(self, chat_id: int | str, **content: Any) -> int:
        """Seed a message (e.g. a channel post to copy); returns its message_id."""
        with self._cond:
            return int(self._new_message("0:seed", self._chat_key(chat_id), content)["message_id"])

    def add_file(self, file_id: str, data: bytes) -> None:
        with self._cond:
            self._store_file("document", data, None, file_id=file_id)

    def file_by_path(self, file_path: str) -> bytes | None:
        with self._cond:
            stored = self._paths.get(file_path)
            return stored.data if stored else None

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | str | None = None,
    ) -> None:
        """Make the next `times` matching calls fail; method "*" matches any method."""
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if error_code == 429
                else DEFAULT_DESCRIPTIONS.get(error_code, "Error")
            )
        with self._cond:
            chat = None if chat_id is None else self._chat_key(chat_id)
            self._faults.append(_Fault(method.lower(), error_code, description, retry_after, times, chat))

    def block_chat(self, chat_id: int | str) -> None:
        with self._cond:
            self._blocked.add(self._chat_key(chat_id))

    def webhook(self, token: str | None = None) -> dict[str, Any] | None:
        """What setWebhook stored (including the secret itself); the last one set if no token."""
        with self._cond:
            if token is None:
                return copy.deepcopy(next(reversed(self._webhooks.values()), None))
            return copy.deepcopy(self._webhooks.get(token))

    def handle(
        self, token: str, method: str, params: dict[str, Any], uploads: dict[str, Upload]
    ) -> tuple[int, dict[str, Any]]:
        """Record one call and answer it: (HTTP status, Telegram JSON body)."""
        with self._cond:
            self._calls.append(Call(token, method, _for_record(params, uploads), time.monotonic()))
            self._cond.notify_all()
            try:
                self._raise_fault(method.lower(), params)
                result = self.dispatch(token, method.lower(), params, uploads)
            except ApiError as e:
                return e.code, e.body()
            return 200, {"ok": True, "result": result}

    def _raise_fault(self, name: str, params: dict[str, Any]) -> None:
        raw = params.get("chat_id")
        chat = None if raw in (None, "") else self._chat_key(raw)
        for fault in self._faults:
            if fault.method in ("*", name) and fault.chat in (None, chat):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                raise ApiError(fault.error_code, fault.description, fault.retry_after)
        if name in BLOCKABLE and chat is not None and chat in self._blocked:
            raise ApiError(403, BLOCKED)


def normalize_params(raw: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
    """Bring form-encoded and JSON-encoded requests to the same typed shape."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            if key in JSON_FIELDS and value[:1] in ("{", "["):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            elif key in INT_FIELDS and value.lstrip("-").isdigit():
                value = int(value)
            elif key in BOOL_FIELDS and value.lower() in ("true", "false"):
                value = value.lower() == "true"
        params[key] = value
    # Classic uploads put the file part under the parameter's own name (photo=<file>) instead of
    # aiogram's photo="attach://<random>"; referencing it the attach way lets one code path handle both.
    for name in uploads:
        params.setdefault(name, f"attach://{name}")
    return params


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    # Parsed by hand because starlette's form parser needs python-multipart, which we don't depend on.
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without boundary")
    fields: dict[str, str] = {}
    uploads: dict[str, Upload] = {}
    # Every delimiter but the first is preceded by CRLF; prefixing one makes them uniform.
    for chunk in (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        part = email.message_from_bytes(head.strip(b"\r\n") + b"\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        name = email.utils.collapse_rfc2231_value(name)
        filename = part.get_filename()
        if filename is not None:
            uploads[name] = Upload(filename, data)
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8", errors="replace")
    return fields, uploads


async def read_params(request: Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    # Telegram merges query-string and body parameters, so do we.
    raw: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, Upload] = {}
    body = await request.body()
    if body:
        content_type = request.headers.get("content-type", "")
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime == "application/json":
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            raw.update(data)
        elif mime == "multipart/form-data":
            fields, uploads = parse_multipart(body, content_type)
            raw.update(fields)
        else:
            raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return normalize_params(raw, uploads), uploads


def create_app(api: FakeBotAPI) -> Starlette:
    async def call_method(request: Request) -> Response:
        try:
            params, uploads = await read_params(request)
        except (ValueError, UnicodeDecodeError) as e:
            body = ApiError(400, f"Bad Request: can't parse request: {e}").body()
            return JSONResponse(body, status_code=400)
        status, answer = api.handle(
            request.path_params["token"], request.path_params["method"], params, uploads
        )
        return JSONResponse(answer, status_code=status)

    async def download(request: Request) -> Response:
        data = api.file_by_path(request.path_params["file_path"])
        if data is None:
            return JSONResponse({"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404)
        return Response(data, media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/bot{token}/{method}", call_method, methods=["GET", "POST"]),
            Route("/file/bot{token}/{file_path:path}", download, methods=["GET"]),
        ]
    )


class FakeBotAPIServer(LiveServer):
    """Serves create_app(api) with uvicorn from a background thread with its own event loop."""

    def __init__(self, api: FakeBotAPI | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api or FakeBotAPI()
        super().__init__(create_app(self.api), lifespan="off", host=host, port=port)

    @property
    def base_url(self) -> str:
        if self._thread is None:
            raise RuntimeError("FakeBotAPIServer is not started")
        return self.url
