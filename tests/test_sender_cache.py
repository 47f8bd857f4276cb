"""SenderCache: account connections kept across batches, counted by the emulator as Telegram would."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis

from userbot.fake import FakeGateway, FakeGroup, FakeTelegram
from userbot.gateway import GatewayError, Peer, SignedIn
from userbot.sender_cache import SenderCache
from userbot.tracked_sender import breaks_connection

GROUP = -1001000000001
PEER = Peer(GROUP, "supergroup", 1)
IDLE_S = 900


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def net(redis: Redis) -> FakeTelegram:  # the emulator alone, without the app's settings
    return FakeTelegram(redis, "t:fake:")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(net: FakeTelegram, clock: Clock) -> SenderCache:
    return SenderCache(FakeGateway(net), idle_s=IDLE_S, max_open=3, clock=clock)


async def login(net: FakeTelegram, phone: str) -> tuple[int, str]:
    uid = await net.add_account(phone)
    await net.add_group(FakeGroup(GROUP, "g", access_hash=1), members=[uid])
    gateway = FakeGateway(net)
    code = await gateway.send_code(phone)
    signed = await gateway.sign_in(code.temp_session, phone, await net.last_code(phone) or "", code.phone_code_hash)
    assert isinstance(signed, SignedIn)
    return uid, signed.session


async def batch(cache: SenderCache, key: int, session: str, random_id: int) -> None:
    async with cache.sender(key, session) as sender:
        await sender.send_text(PEER, f"post {random_id}", [], random_id)


async def test_every_batch_of_an_account_reuses_one_connection(net: FakeTelegram, cache: SenderCache) -> None:
    uid, session = await login(net, "+998900000001")
    for n in range(10):
        await batch(cache, uid, session, n)
    assert await net.connect_count(uid) == 1
    assert await net.open_connections() == 1
    assert len(await net.posted(GROUP)) == 10
    stats = cache.stats()
    assert (stats.open, stats.in_use, stats.connects, stats.reuses) == (1, 0, 1, 9)


async def test_concurrent_batches_of_one_account_connect_once(net: FakeTelegram, cache: SenderCache) -> None:
    uid, session = await login(net, "+998900000001")
    await asyncio.gather(*(batch(cache, uid, session, n) for n in range(5)))
    assert (await net.connect_count(uid), await net.open_connections()) == (1, 1)


async def test_idle_connections_are_closed_by_the_sweep(
    net: FakeTelegram, cache: SenderCache, clock: Clock
) -> None:
    uid_a, session_a = await login(net, "+998900000001")
    uid_b, session_b = await login(net, "+998900000002")
    await batch(cache, uid_a, session_a, 1)
    clock.now += 600
    await batch(cache, uid_b, session_b, 2)
    clock.now += IDLE_S - 600
    assert await cache.sweep() == 1  # a: idle for exactly IDLE_S; b: 600 s less
    assert (uid_a in cache, uid_b in cache) == (False, True)
    assert await net.open_connections() == 1
    clock.now += 600
    assert await cache.sweep() == 1
    assert await net.open_connections() == 0
    await batch(cache, uid_a, session_a, 3)  # the next cycle connects again
    assert await net.connect_count(uid_a) == 2
    assert cache.stats().closed_idle == 2


async def test_the_least_recently_used_is_closed_over_the_maximum(net: FakeTelegram, cache: SenderCache) -> None:
    accounts = [await login(net, f"+99890000000{n}") for n in range(4)]
    for n in (0, 1, 2, 0):  # account 1 is now the least recently used
        await batch(cache, *accounts[n], n)
    await batch(cache, *accounts[3], 3)
    assert [uid in cache for uid, _ in accounts] == [True, False, True, True]
    assert await net.open_connections() == 3
    assert cache.stats().closed_lru == 1


async def test_a_connection_in_use_is_never_evicted(net: FakeTelegram, clock: Clock) -> None:
    cache = SenderCache(FakeGateway(net), idle_s=IDLE_S, max_open=1, clock=clock)
    (uid_a, session_a), (uid_b, session_b) = [await login(net, f"+99890000000{n}") for n in (1, 2)]
    async with cache.sender(uid_a, session_a) as sender:
        await batch(cache, uid_b, session_b, 1)  # over the maximum while a is busy: b goes, not a
        clock.now += IDLE_S * 10
        assert await cache.sweep() == 0
        assert (uid_a in cache, uid_b in cache) == (True, False)
        await sender.send_text(PEER, "still connected", [], 2)
    assert await net.open_connections() == 1
    assert len(await net.posted(GROUP)) == 2


async def test_discard_closes_and_forgets(net: FakeTelegram, cache: SenderCache) -> None:
    uid, session = await login(net, "+998900000001")
    await batch(cache, uid, session, 1)
    await cache.discard(uid)
    await cache.discard(uid)  # nothing left: no-op
    assert (uid in cache, await net.open_connections()) == (False, 0)
    async with cache.sender(uid, session):
        await cache.discard(uid)  # in use: closed when the batch ends
        assert await net.open_connections() == 1
    assert (uid in cache, await net.open_connections(), await net.connect_count(uid)) == (False, 0, 2)


async def test_close_all_closes_everything_and_takes_no_more_work(net: FakeTelegram, cache: SenderCache) -> None:
    accounts = [await login(net, f"+99890000000{n}") for n in range(3)]
    for n, (uid, session) in enumerate(accounts[:2]):
        await batch(cache, uid, session, n)
    cache.start(every_s=3600)
    async with cache.sender(*accounts[2]):
        await cache.close_all()
        assert await net.open_connections() == 1  # the busy one ends with its batch
    assert (len(cache), await net.open_connections()) == (0, 0)
    with pytest.raises(RuntimeError):
        await batch(cache, *accounts[0], 9)


@pytest.mark.parametrize("code", ["NETWORK", "TIMEOUT", "SESSION_REVOKED", "AUTH_KEY_UNREGISTERED"])
async def test_a_broken_connection_raised_out_of_the_block_is_dropped(
    net: FakeTelegram, cache: SenderCache, code: str
) -> None:
    uid, session = await login(net, "+998900000001")
    with pytest.raises(GatewayError):
        async with cache.sender(uid, session):
            raise GatewayError(code)
    assert (uid in cache, await net.open_connections()) == (False, 0)
    await batch(cache, uid, session, 1)
    assert await net.connect_count(uid) == 2


async def test_a_broken_send_caught_inside_the_block_still_drops_it(net: FakeTelegram, cache: SenderCache) -> None:
    uid, session = await login(net, "+998900000001")
    await net.kill_connection(uid)
    async with cache.sender(uid, session) as sender:
        with pytest.raises(GatewayError) as info:  # the worker classifies it and goes on
            await sender.send_text(PEER, "x", [], 1)
        assert info.value.code == "NETWORK"
        await sender.send_text(PEER, "y", [], 2)
    assert (uid in cache, await net.open_connections()) == (False, 0)
    assert cache.stats().dropped == 1


async def test_a_revoked_session_surfaces_on_send_and_is_dropped(net: FakeTelegram, cache: SenderCache) -> None:
    uid, session = await login(net, "+998900000001")
    await batch(cache, uid, session, 1)
    await net.revoke_sessions(uid)
    with pytest.raises(GatewayError) as info:
        await batch(cache, uid, session, 2)  # the cached connection does not know yet
    assert info.value.code == "SESSION_REVOKED"
    assert uid not in cache
    with pytest.raises(GatewayError):
        await batch(cache, uid, session, 3)  # connecting again is refused outright
    assert (len(cache), await net.open_connections(), await net.connect_count(uid)) == (0, 0, 1)


@pytest.mark.parametrize("code", ["FLOOD_WAIT_X", "CHAT_WRITE_FORBIDDEN", "SLOWMODE_WAIT_X", "RPC_CALL_FAIL"])
async def test_refusals_of_one_send_keep_the_connection(net: FakeTelegram, cache: SenderCache, code: str) -> None:
    uid, session = await login(net, "+998900000001")
    with pytest.raises(GatewayError):
        async with cache.sender(uid, session):
            raise GatewayError(code, 30)
    await batch(cache, uid, session, 1)
    assert (uid in cache, await net.connect_count(uid)) == (True, 1)


def test_breaks_connection_table() -> None:
    broken = ["NETWORK", "TIMEOUT", "SESSION_REVOKED", "AUTH_KEY_UNREGISTERED", "USER_DEACTIVATED_BAN",
              "AUTH_KEY_DUPLICATED"]
    kept = ["FLOOD_WAIT_X", "PEER_FLOOD", "CHAT_WRITE_FORBIDDEN", "RPC_CALL_FAIL", "RANDOM_ID_DUPLICATE", "UNKNOWN"]
    assert [breaks_connection(GatewayError(c)) for c in broken + kept] == [True] * len(broken) + [False] * len(kept)


async def test_a_new_login_replaces_the_connection(net: FakeTelegram, cache: SenderCache) -> None:
    uid, old = await login(net, "+998900000001")
    await batch(cache, uid, old, 1)
    _, new = await login(net, "+998900000001")
    await batch(cache, uid, new, 2)
    await batch(cache, uid, new, 3)
    assert (await net.connect_count(uid), await net.open_connections()) == (2, 1)


async def test_a_failed_connect_caches_nothing(net: FakeTelegram, cache: SenderCache) -> None:
    with pytest.raises(GatewayError) as info:
        await batch(cache, 42, "fake-not-a-session", 1)
    assert info.value.code == "AUTH_KEY_UNREGISTERED"
    assert (len(cache), cache.stats().connects) == (0, 0)


async def test_the_background_sweep_closes_idle_connections(
    net: FakeTelegram, cache: SenderCache, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid, session = await login(net, "+998900000001")
    await batch(cache, uid, session, 1)
    swept = asyncio.Event()
    sweep = cache.sweep

    async def observed_sweep() -> int:
        closed = await sweep()
        if closed:
            swept.set()
        return closed

    monkeypatch.setattr(cache, "sweep", observed_sweep)
    cache.start(every_s=0.01)
    clock.now += IDLE_S
    async with asyncio.timeout(10):
        await swept.wait()
    assert (uid in cache, await net.open_connections()) == (False, 0)
    await cache.close_all()


async def test_sessions_never_reach_the_logs(
    net: FakeTelegram, cache: SenderCache, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="userbot.sender_cache")
    uid, session = await login(net, "+998900000001")
    await batch(cache, uid, session, 1)
    await net.kill_connection(uid)
    with pytest.raises(GatewayError):
        await batch(cache, uid, session, 2)
    await batch(cache, uid, session, 3)
    clock.now += IDLE_S
    await cache.sweep()
    assert caplog.records  # connects and drops are logged, by account
    assert all(session not in r.getMessage() and session not in repr(r.args) for r in caplog.records)
