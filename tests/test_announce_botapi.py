"""The workers' Bot API client (worker/botapi.py), unit-tested with pytest-httpx."""

from __future__ import annotations

import json

import httpx
import pytest
from pytest_httpx import HTTPXMock

from worker.botapi import BotApiClient, BotApiError

BASE = "https://botapi.test"
TOKEN = "42:abc"


def _request(httpx_mock: HTTPXMock) -> httpx.Request:
    request = httpx_mock.get_request()
    assert request is not None
    return request


def url(method: str) -> str:
    return f"{BASE}/bot{TOKEN}/{method}"


async def test_call_posts_json_without_none_values_and_returns_result(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("sendMessage"), json={"ok": True, "result": {"message_id": 7}})
    async with BotApiClient(TOKEN, BASE) as api:
        result = await api.send_message(5, "<b>hi</b>")
    assert result == {"message_id": 7}
    body = json.loads(_request(httpx_mock).content)
    assert body == {"chat_id": 5, "text": "<b>hi</b>", "parse_mode": "HTML"}


async def test_copy_message_returns_the_new_message_id(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("copyMessage"), json={"ok": True, "result": {"message_id": 99}})
    async with BotApiClient(TOKEN, BASE) as api:
        assert await api.copy_message(1, 2, 3) == 99
    assert json.loads(_request(httpx_mock).content) == {"chat_id": 1, "from_chat_id": 2, "message_id": 3}


async def test_429_carries_retry_after(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, json={
        "ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
        "parameters": {"retry_after": 5}})
    async with BotApiClient(TOKEN, BASE) as api:
        with pytest.raises(BotApiError) as caught:
            await api.copy_message(1, 2, 3)
    assert (caught.value.error_code, caught.value.retry_after, caught.value.blocked) == (429, 5, False)


async def test_403_means_blocked(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=403, json={
        "ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    async with BotApiClient(TOKEN, BASE) as api:
        with pytest.raises(BotApiError) as caught:
            await api.copy_message(1, 2, 3)
    assert caught.value.blocked and caught.value.retry_after is None


async def test_non_json_answer_is_an_error_with_the_http_status(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=502, text="<html>bad gateway</html>")
    async with BotApiClient(TOKEN, BASE) as api:
        with pytest.raises(BotApiError) as caught:
            await api.send_message(1, "x")
    assert caught.value.error_code == 502


async def test_edit_not_modified_is_not_an_error_but_others_are(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json={
        "ok": False, "error_code": 400, "description": "Bad Request: message is not modified"})
    httpx_mock.add_response(status_code=400, json={
        "ok": False, "error_code": 400, "description": "Bad Request: message to edit not found"})
    async with BotApiClient(TOKEN, BASE) as api:
        await api.edit_message_text(1, 2, "same")
        with pytest.raises(BotApiError):
            await api.edit_message_text(1, 2, "gone")
