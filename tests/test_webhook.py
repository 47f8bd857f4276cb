"""POST /telegram/webhook: secret, size bound, parsing, de-duplication, handler failures."""

from __future__ import annotations

import logging

import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from api.state import AppState
from tests.harness import Telegram, TgUser


def _update(update_id: int, user: TgUser, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 0, "text": text,
            "chat": {"id": user.id, "type": "private"}, "from": user.as_dict(),
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}] if text.startswith("/") else [],
        },
    }


@pytest.fixture
def user(admin: TgUser) -> TgUser:
    """A super admin passes the access check, so these tests see only the webhook's own behaviour."""
    return admin


@pytest.fixture
def probe(app) -> list[int]:
    """A router that records which updates reached the handlers, and one that raises."""
    seen: list[int] = []
    router = Router(name="probe")

    @router.message(Command("probe"))
    async def _probe(message: Message) -> None:
        seen.append(message.message_id)

    @router.message(Command("boom"))
    async def _boom(message: Message) -> None:
        raise RuntimeError("handler exploded")

    state: AppState = app.state.tgcast
    state.dispatcher.include_router(router)
    # Ahead of the feature routers, whose catch-all fallback would otherwise take the commands.
    state.dispatcher.sub_routers.insert(0, state.dispatcher.sub_routers.pop())
    return seen


@pytest.mark.parametrize("secret", [None, "", "wrong-secret"])
async def test_wrong_or_missing_secret_is_401(tg: Telegram, user: TgUser, probe: list[int], secret) -> None:
    response = await tg.post_update(_update(1, user, "/probe"), secret=secret)
    assert response.status_code == 401
    assert probe == []


async def test_oversize_body_is_413(tg: Telegram, user: TgUser, probe: list[int]) -> None:
    update = _update(2, user, "/probe " + "x" * (1024 * 1024))
    response = await tg.post_update(update)
    assert response.status_code == 413
    assert probe == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"no_update_id": true}', b'{"update_id": "x"}'])
async def test_non_update_body_is_400(client, body: bytes) -> None:
    response = await client.post(
        "/telegram/webhook", content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": "test-webhook-secret-0123456789"},
    )
    assert response.status_code == 400


async def test_same_update_id_is_handled_once(tg: Telegram, user: TgUser, probe: list[int]) -> None:
    first = await tg.post_update(_update(42, user, "/probe"))
    again = await tg.post_update(_update(42, user, "/probe"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert probe == [1]


async def test_handler_exception_is_200_logged_and_user_told(
    tg: Telegram, user: TgUser, probe: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    response = await tg.post_update(_update(77, user, "/boom"))
    assert response.status_code == 200
    failures = [r for r in caplog.records if "handler failed on update 77" in r.getMessage()]
    assert failures, "the failure must be logged with the update id"
    told = tg.api.messages(user.id)
    assert told and "common.error" in tg.screen(user).keys


async def test_method_returned_by_handler_is_the_response_body(app, tg: Telegram, user: TgUser) -> None:
    router = Router(name="inline-reply")

    @router.message(Command("inline"))
    async def _inline(message: Message):
        return message.answer("hi")

    dispatcher = app.state.tgcast.dispatcher
    dispatcher.include_router(router)
    dispatcher.sub_routers.insert(0, dispatcher.sub_routers.pop())  # ahead of the catch-all fallback
    response = await tg.post_update(_update(5, user, "/inline"))
    body = response.json()
    assert response.status_code == 200
    assert body["method"] == "sendMessage" and str(body["chat_id"]) == str(user.id)
    # Telegram executes the inline reply; the harness does the same against the fake Bot API.
    assert [c.params["text"] for c in tg.api.calls_of("sendMessage")] == ["hi"]
