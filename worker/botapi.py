"""The workers' Bot API client: a few methods over httpx, no aiogram (workers stay light).

Errors come back as `BotApiError` carrying Telegram's `error_code`, `description` and `retry_after`,
so callers decide: a 429 is waited out, a 403 (blocked by the user) is counted and not retried.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class BotApiError(Exception):
    def __init__(self, method: str, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{method}: {error_code} {description}")
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    @property
    def blocked(self) -> bool:
        """The user blocked the bot or deleted their account: retrying never helps."""
        return self.error_code == 403


class BotApiClient:
    def __init__(self, token: str, base_url: str | None = None, *, timeout: float = 30.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self._base = f"{(base_url or 'https://api.telegram.org').rstrip('/')}/bot{token}"
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> BotApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(self, method: str, **params: Any) -> Any:
        body = {k: v for k, v in params.items() if v is not None}
        response = await self._client.post(f"{self._base}/{method}", json=body)
        try:
            payload = response.json()
        except json.JSONDecodeError:
            raise BotApiError(method, response.status_code, "not a Bot API answer") from None
        if not payload.get("ok"):
            parameters = payload.get("parameters") or {}
            raise BotApiError(
                method,
                int(payload.get("error_code", response.status_code)),
                str(payload.get("description", "")),
                parameters.get("retry_after"),
            )
        return payload.get("result")

    async def send_message(self, chat_id: int, text: str, *, reply_markup: dict[str, Any] | None = None,
                           parse_mode: str | None = "HTML") -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "sendMessage", chat_id=chat_id, text=text, reply_markup=reply_markup, parse_mode=parse_mode
        )
        return result

    async def edit_message_text(self, chat_id: int, message_id: int, text: str,
                                parse_mode: str | None = "HTML") -> None:
        try:
            await self.call("editMessageText", chat_id=chat_id, message_id=message_id, text=text,
                            parse_mode=parse_mode)
        except BotApiError as exc:
            if "message is not modified" not in exc.description:
                raise

    async def copy_message(self, chat_id: int, from_chat_id: int, message_id: int) -> int:
        result = await self.call("copyMessage", chat_id=chat_id, from_chat_id=from_chat_id, message_id=message_id)
        return int(result["message_id"])
