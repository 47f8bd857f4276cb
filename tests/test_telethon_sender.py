"""The Telethon sender through Telethon's real request path (`TelegramClient.__call__`), offline.

Only the MTProto sender (the socket) is replaced: the client's own retry and flood-sleep logic runs
as installed, so these tests pin what Telethon does with the options the gateway gives it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from telethon import TelegramClient, errors
from telethon.client import users as tl_users
from telethon.tl import functions, types

import userbot.telethon_gateway as tg
from userbot.gateway import HISTORY_PAGE, NOT_POSTED, GatewayError, Peer, Sent

PEER = Peer(chat_id=-123, kind="group")


class Wire:
    """Stands in for Telethon's MTProtoSender: records each request put on the wire and answers it."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.answers: list[Any] = []  # one per request: an exception to raise or a result

    def send(self, request: Any, ordered: bool = False) -> asyncio.Future[Any]:
        self.requests.append(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        answer = self.answers.pop(0) if self.answers else types.UpdateShortSentMessage(
            id=7, pts=1, pts_count=1, date=None
        )
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return future


class OfflineClient(TelegramClient):
    """A real TelegramClient whose connect() plugs in the `Wire` instead of opening a socket."""

    wire: Wire
    built: ClassVar[list[OfflineClient]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wire = Wire()
        OfflineClient.built.append(self)

    async def connect(self) -> None:
        self._sender = self.wire

    async def disconnect(self) -> None:
        return None


@pytest.fixture
def client_class(monkeypatch: pytest.MonkeyPatch) -> type[OfflineClient]:
    OfflineClient.built = []
    monkeypatch.setattr(tg, "TelegramClient", OfflineClient)
    return OfflineClient


@pytest.fixture
def telethon_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Telethon's own pauses inside a request (it sleeps 2 s after a 5xx), recorded instead of waited."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(tl_users, "asyncio", SimpleNamespace(sleep=sleep))
    return slept


GW = tg.TelethonGateway(api_id=1, api_hash="0" * 32)


def _sent_requests(client: OfflineClient) -> list[Any]:
    # receive_updates=False makes Telethon wrap every request in InvokeWithoutUpdates.
    assert all(isinstance(r, functions.InvokeWithoutUpdatesRequest) for r in client.wire.requests)
    return [r.query for r in client.wire.requests]


async def test_client_makes_one_attempt_and_never_sleeps_through_floods(client_class: type[OfflineClient]) -> None:
    async with GW.connect("") as conn:
        assert await conn.send_text(PEER, "hi", [], 1) == Sent(message_id=7)
    [client] = client_class.built
    assert client._request_retries == 0  # Telethon's retry_range(0): exactly one attempt
    assert client.flood_sleep_threshold == 0
    [request] = _sent_requests(client)
    assert isinstance(request, functions.messages.SendMessageRequest)  # no get_me probe before it


async def test_random_id_duplicate_is_not_resent(
    client_class: type[OfflineClient], telethon_sleeps: list[float]
) -> None:
    async with GW.connect("") as conn:
        client = client_class.built[0]
        client.wire.answers = [errors.RandomIdDuplicateError(request=None)] * 3
        assert await conn.send_text(PEER, "hi", [], 5) == Sent(message_id=0, duplicate=True)
    assert len(_sent_requests(client)) == 1
    assert telethon_sleeps == [2]  # the one pause Telethon makes after any 5xx; no second attempt


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.RpcCallFailError(request=None), "RPC_CALL_FAIL"),
        (errors.ServerError(request=None, message="No workers running", code=500), "RPC_CALL_FAIL"),
        (errors.rpcerrorlist.TimedoutError(request=None), "TIMEOUT"),
        (errors.FloodWaitError(request=None, capture=3), "FLOOD_WAIT_X"),
        (errors.SlowModeWaitError(request=None, capture=5), "SLOWMODE_WAIT_X"),
    ],
)
async def test_server_errors_and_waits_reach_the_classifier_after_one_request(
    client_class: type[OfflineClient], telethon_sleeps: list[float], error: Exception, code: str
) -> None:
    async with GW.connect("") as conn:
        client = client_class.built[0]
        client.wire.answers = [error] * 3
        with pytest.raises(GatewayError) as info:
            await conn.send_text(PEER, "hi", [], 5)
    assert info.value.code == code
    assert len(_sent_requests(client)) == 1
    assert sum(telethon_sleeps) <= 2  # never a flood wait slept through


async def test_a_dead_session_connects_and_fails_on_the_first_send(client_class: type[OfflineClient]) -> None:
    async with GW.connect("") as conn:
        client = client_class.built[0]
        client.wire.answers = [errors.AuthKeyUnregisteredError(request=None)]
        with pytest.raises(GatewayError) as info:
            await conn.send_text(PEER, "hi", [], 5)
    assert info.value.code == "AUTH_KEY_UNREGISTERED"
    assert len(_sent_requests(client)) == 1


async def test_one_connection_serves_many_sends(client_class: type[OfflineClient]) -> None:
    async with GW.connect("") as conn:
        for n in range(5):
            await conn.send_text(PEER, f"post {n}", [], n)
    [client] = client_class.built
    assert [r.random_id for r in _sent_requests(client)] == [0, 1, 2, 3, 4]


async def test_a_request_telegram_never_answers_is_a_timeout(client_class: type[OfflineClient]) -> None:
    """Telethon bounds its connects, not a request's answer; the gateway does."""
    gateway = tg.TelethonGateway(api_id=1, api_hash="0" * 32, request_timeout_s=0.2)
    async with gateway.connect("") as conn:
        client = client_class.built[0]
        client.wire.send = lambda request, ordered=False: asyncio.get_running_loop().create_future()  # type: ignore[method-assign]
        with pytest.raises(GatewayError) as info:
            await asyncio.wait_for(conn.send_text(PEER, "hi", [], 5), 5)
    assert info.value.code == "TIMEOUT"


def _history(*messages: tuple[int, bool, datetime, str]) -> types.messages.Messages:
    return types.messages.Messages(messages=[
        types.Message(id=mid, peer_id=types.PeerChat(123), date=date, message=text, out=out)
        for mid, out, date, text in messages], chats=[], users=[], topics=[])


async def test_find_own_post_reads_one_page_of_history(client_class: type[OfflineClient]) -> None:
    since = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    after, before = since + timedelta(seconds=5), since - timedelta(seconds=30)
    async with GW.connect("") as conn:
        client = client_class.built[0]
        client.wire.answers = [
            _history((9, False, after, "hi"), (8, True, after, "hi "), (7, True, before, "hi")),
            _history((9, False, after, "other"), (7, True, before, "hi")),
            _history(*[(n, False, after, "chatter") for n in range(HISTORY_PAGE, 0, -1)]),
            _history((3, False, after, "chatter")),
        ]
        assert await conn.find_own_post(PEER, since, "hi") == 8  # ours, after the attempt, trimmed alike
        assert await conn.find_own_post(PEER, since, "hi") == NOT_POSTED  # the page reaches back past it
        assert await conn.find_own_post(PEER, since, "hi") is None  # a full page, all newer: cannot tell
        assert await conn.find_own_post(PEER, since, "hi") == NOT_POSTED  # the whole history, shorter
        topic = Peer(chat_id=-1001234, kind="forum", access_hash=5, topic_id=77)
        client.wire.answers = [_history()]
        assert await conn.find_own_post(topic, since, "hi") == NOT_POSTED
    requests = _sent_requests(client)
    assert all(isinstance(r, functions.messages.GetHistoryRequest) and r.limit == HISTORY_PAGE
               for r in requests[:4])
    assert isinstance(requests[4], functions.messages.GetRepliesRequest) and requests[4].msg_id == 77
