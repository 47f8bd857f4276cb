"""The Telethon gateway's group listing through Telethon's real request path (`iter_dialogs` and
`TelegramClient.__call__`), offline: only the socket is replaced (see tests/test_telethon_sender.py).

The listing runs inside a webhook request, so it must be bounded: it walks at most MAX_DIALOGS
dialogs, and a flood wait is reported as FLOOD_WAIT_X at once, never slept through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from telethon import errors
from telethon.tl import functions, types

import userbot.telethon_gateway as tg
from tests import test_telethon_sender as sender_tests
from tests.test_telethon_sender import OfflineClient
from userbot.gateway import GatewayError

GW = tg.TelethonGateway(api_id=1, api_hash="0" * 32)
# The offline client and Telethon's recorded sleeps: the sender tests' fixtures, shared.
client_class = sender_tests.client_class
telethon_sleeps = sender_tests.telethon_sleeps
PAGE = 100  # Telethon asks for 100 dialogs per request
ME = types.User(id=1, is_self=True, access_hash=2)
DATE = datetime(2026, 5, 1, tzinfo=UTC)


def supergroup(n: int) -> types.Channel:
    return types.Channel(id=10_000 + n, title=f"Group {n}", photo=types.ChatPhotoEmpty(), date=DATE,
                         megagroup=True, access_hash=500 + n)


def page(first: int, size: int, total: int) -> types.messages.DialogsSlice:
    """Dialogs `first`..`first + size - 1` of an account with `total`, newest first, as Telegram pages them."""
    chats = [supergroup(n) for n in range(first, first + size)]
    dialogs = [
        types.Dialog(peer=types.PeerChannel(c.id), top_message=total - n, read_inbox_max_id=0,
                     read_outbox_max_id=0, unread_count=0, unread_mentions_count=0, unread_reactions_count=0,
                     unread_poll_votes_count=0, notify_settings=types.PeerNotifySettings())
        for n, c in enumerate(chats, start=first)
    ]
    messages = [types.Message(id=total - n, peer_id=types.PeerChannel(c.id), date=DATE, message="hi")
                for n, c in enumerate(chats, start=first)]
    return types.messages.DialogsSlice(count=total, dialogs=dialogs, messages=messages, chats=chats, users=[])


def dialog_requests(client: OfflineClient) -> list[Any]:
    queries = [r.query for r in client.wire.requests]
    return [q for q in queries if isinstance(q, functions.messages.GetDialogsRequest)]


async def test_a_large_account_is_walked_up_to_the_bound(
    client_class: type[OfflineClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    total = tg.TelethonGateway.MAX_DIALOGS + 500
    answers: list[Any] = [[ME]] + [page(n, PAGE, total) for n in range(0, total, PAGE)]
    monkeypatch.setattr(OfflineClient, "connect", _plug(answers))
    groups = await GW.list_groups("")
    [client] = client_class.built
    assert client.flood_sleep_threshold == 0
    requests = dialog_requests(client)
    assert len(requests) == tg.TelethonGateway.MAX_DIALOGS // PAGE  # stops at the bound, not at 2,500
    assert len(groups) == tg.TelethonGateway.MAX_DIALOGS
    assert groups[0].chat_id == -1000000010000 and groups[0].access_hash == 500
    assert len({g.chat_id for g in groups}) == len(groups)


async def test_a_flood_wait_while_paging_is_reported_not_slept_through(
    client_class: type[OfflineClient], telethon_sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 5 s is below the threshold the listing used to sleep through (10 s): now it is never slept.
    answers: list[Any] = [[ME], page(0, PAGE, 2000), page(PAGE, PAGE, 2000),
                          errors.FloodWaitError(request=None, capture=5)]
    monkeypatch.setattr(OfflineClient, "connect", _plug(answers))
    with pytest.raises(GatewayError) as info:
        await GW.list_groups("")
    assert (info.value.code, info.value.seconds) == ("FLOOD_WAIT_X", 5)
    [client] = client_class.built
    assert len(dialog_requests(client)) == 3  # no retry after the wait
    assert telethon_sleeps == []


def _plug(answers: list[Any]) -> Any:
    async def connect(self: OfflineClient) -> None:
        self.wire.answers = list(answers)
        self._sender = self.wire

    return connect
