"""Two worker processes (two SenderCaches with claims) never keep one account's connection open at once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.test_sender_cache import PEER, Clock, batch, login
from userbot.claims import ConnectionClaims
from userbot.fake import FakeGateway, FakeSender, FakeTelegram
from userbot.gateway import GatewayError
from userbot.sender_cache import SenderCache

PREFIX = "t:"


@pytest.fixture
def net(redis: Redis) -> FakeTelegram:
    return FakeTelegram(redis, "t:fake:")


@pytest.fixture
def clock() -> Clock:
    return Clock()


def worker(net: FakeTelegram, clock: Clock, owner: str, *, while_waiting: Callable[[], Awaitable[None]] | None = None,
           ) -> SenderCache:
    """A worker process; when it waits for a claim, time passes and `while_waiting` runs (the
    holder's upkeep), so the whole exchange is driven without sleeping."""

    async def wait(seconds: float) -> None:
        clock.now += seconds
        if while_waiting is not None:
            await while_waiting()
        await asyncio.sleep(0)

    claims = ConnectionClaims(net.redis, PREFIX, owner, ttl_s=30, clock=clock, sleep=wait)
    return SenderCache(FakeGateway(net), claims=claims, clock=clock)


async def claim_holder(redis: Redis, uid: int) -> str | None:
    holder = await redis.get(f"{PREFIX}conn:{uid}")
    return holder.decode() if holder else None


async def test_a_worker_asks_the_holder_to_let_go_and_takes_over(
    net: FakeTelegram, clock: Clock, redis: Redis
) -> None:
    uid, session = await login(net, "+998900000001")
    w1 = worker(net, clock, "w1")
    w2 = worker(net, clock, "w2", while_waiting=w1.maintain)
    await batch(w1, uid, session, 1)
    assert await claim_holder(redis, uid) == "w1"
    await batch(w2, uid, session, 2)
    assert (uid in w1, uid in w2, await claim_holder(redis, uid)) == (False, True, "w2")
    assert (await net.open_connections(uid), await net.peak_connections(uid)) == (1, 1)
    assert len(await net.posted(-1001000000001)) == 2


async def test_a_busy_holder_lets_go_when_its_batch_ends(net: FakeTelegram, clock: Clock) -> None:
    uid, session = await login(net, "+998900000001")
    w1 = worker(net, clock, "w1")
    rounds = 0
    asked_twice = asyncio.Event()

    async def w1_does_its_upkeep() -> None:
        nonlocal rounds
        await w1.maintain()
        rounds += 1
        if rounds == 2:
            asked_twice.set()

    w2 = worker(net, clock, "w2", while_waiting=w1_does_its_upkeep)
    async with w1.sender(uid, session) as sender:
        waiting = asyncio.create_task(batch(w2, uid, session, 2))
        await asked_twice.wait()
        assert (await net.open_connections(uid), await net.connect_count(uid)) == (1, 1)  # w2 still waits
        await sender.send_text(PEER, "still mine", [], 1)
    await waiting
    assert (uid in w1, uid in w2) == (False, True)
    assert (await net.connect_count(uid), await net.peak_connections(uid)) == (2, 1)


async def test_a_holder_that_never_answers_times_the_batch_out(net: FakeTelegram, clock: Clock) -> None:
    uid, session = await login(net, "+998900000001")
    w1, w2 = worker(net, clock, "w1"), worker(net, clock, "w2")
    await batch(w1, uid, session, 1)
    with pytest.raises(GatewayError) as info:
        await batch(w2, uid, session, 2)  # w1 never runs its upkeep
    assert info.value.code == "TIMEOUT"
    assert (uid in w2, await net.open_connections(uid), await net.peak_connections(uid)) == (False, 1, 1)


async def test_a_lapsed_claim_taken_elsewhere_closes_ours(net: FakeTelegram, clock: Clock, redis: Redis) -> None:
    uid, session = await login(net, "+998900000001")
    w1, w2 = worker(net, clock, "w1"), worker(net, clock, "w2")
    await batch(w1, uid, session, 1)
    clock.now += 20  # w1 confirmed nothing for two thirds of the TTL (its heartbeat stalled)
    await w1.maintain()  # its next upkeep closes the connection before renewing anything
    await redis.delete(f"{PREFIX}conn:{uid}")  # the TTL runs out
    await batch(w2, uid, session, 2)
    clock.now += 10
    await w1.maintain()
    assert (uid in w1, uid in w2, await net.open_connections(uid)) == (False, True, 1)
    assert await net.peak_connections(uid) == 1  # never two connections of one session at once
    with pytest.raises(GatewayError):
        await batch(w1, uid, session, 3)  # and w1 may not reconnect while w2 holds it


async def test_a_connection_in_use_is_refused_once_its_claim_is_no_longer_trusted(
    net: FakeTelegram, clock: Clock
) -> None:
    """A process frozen past the trust time (nothing ran, not even the watch): on waking, its batch's next
    call is refused before it reaches Telegram, and the watch closes the connection under it."""
    uid, session = await login(net, "+998900000001")
    w1 = worker(net, clock, "w1")
    async with w1.sender(uid, session) as sender:
        await sender.send_text(PEER, "before", [], 1)
        clock.now += 20
        with pytest.raises(GatewayError) as info:
            await sender.send_text(PEER, "after", [], 2)
        assert info.value.code == "NETWORK"  # a transient outcome: retried with its random_id
        assert await w1.close_unconfirmed() == 1
        assert await net.open_connections(uid) == 0
    assert len(await net.posted(-1001000000001)) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_redis_outage_longer_than_the_ttl_closes_the_connection_before_the_claim_lapses(
    net: FakeTelegram, redis: Redis
) -> None:
    """Real time, real Redis, claims of 1.5 s: the holder's own Redis client is pointed at a closed port
    (an outage only it sees); its connection must be closed while the claim is still its own in Redis,
    so the worker that takes the account once the claim lapses is never beside it."""
    uid, session = await login(net, "+998900000001")
    kw = redis.connection_pool.connection_kwargs
    own = Redis(host=kw.get("host", "127.0.0.1"), port=kw.get("port", 6379), db=kw.get("db", 0),
                socket_connect_timeout=0.2, socket_timeout=0.2)
    w1 = SenderCache(FakeGateway(net), claims=ConnectionClaims(own, PREFIX, "w1", ttl_s=1.5))
    w2 = SenderCache(FakeGateway(net), claims=ConnectionClaims(redis, PREFIX, "w2", ttl_s=1.5))
    w1.start(every_s=0.05)
    loop = asyncio.get_running_loop()
    try:
        await batch(w1, uid, session, 1)
        await asyncio.sleep(0.6)  # a heartbeat or two
        own.connection_pool.connection_kwargs["port"] = _free_port()
        await own.connection_pool.disconnect()
        own.connection_pool.reset()  # every connection from now on is made to the closed port
        cut_at = loop.time()
        holder_when_closed: list[str | None] = []
        while loop.time() - cut_at < 4:
            await asyncio.sleep(0.02)
            if not holder_when_closed and await net.open_connections(uid) == 0:
                holder_when_closed.append(await claim_holder(redis, uid))
            if await claim_holder(redis, uid) is None:
                break
        assert holder_when_closed == ["w1"]  # closed while nobody else could have taken the account
        assert await claim_holder(redis, uid) is None  # and the outage outlived the TTL
        assert uid not in w1
        await batch(w2, uid, session, 2)
        assert (await net.open_connections(uid), await net.peak_connections(uid)) == (1, 1)
        with pytest.raises(RedisConnectionError):  # no claim, no connection, while the outage lasts
            await batch(w1, uid, session, 3)
        assert (await net.open_connections(uid), await net.peak_connections(uid)) == (1, 1)
    finally:
        await w1.close_all()
        await w2.close_all()
        await own.aclose()


async def test_the_heartbeat_keeps_claims_and_close_all_gives_them_up(
    net: FakeTelegram, clock: Clock, redis: Redis
) -> None:
    uid, session = await login(net, "+998900000001")
    w1 = worker(net, clock, "w1")
    await batch(w1, uid, session, 1)
    ttl_before = await redis.pttl(f"{PREFIX}conn:{uid}")
    await redis.pexpire(f"{PREFIX}conn:{uid}", 1000)
    clock.now += 10
    await w1.maintain()
    assert await redis.pttl(f"{PREFIX}conn:{uid}") > 1000
    assert ttl_before > 1000
    await w1.close_all()
    assert (await claim_holder(redis, uid), await net.open_connections()) == (None, 0)


async def test_a_failed_connect_gives_the_claim_back(net: FakeTelegram, clock: Clock, redis: Redis) -> None:
    uid, session = await login(net, "+998900000001")
    await net.revoke_sessions(uid)
    w1 = worker(net, clock, "w1")
    with pytest.raises(GatewayError):
        await batch(w1, uid, session, 1)
    assert await claim_holder(redis, uid) is None


async def test_an_idle_closed_connection_lets_go_on_the_first_ask(
    net: FakeTelegram, clock: Clock, redis: Redis
) -> None:
    uid, session = await login(net, "+998900000001")
    w1 = worker(net, clock, "w1")
    w2 = worker(net, clock, "w2", while_waiting=w1.maintain)
    await batch(w1, uid, session, 1)
    clock.now += 900
    assert await w1.sweep() == 1  # closed, but the claim stays w1's until it lapses or is asked for
    assert await claim_holder(redis, uid) == "w1"
    await batch(w2, uid, session, 2)
    assert (await claim_holder(redis, uid), await net.peak_connections(uid)) == ("w2", 1)


class _SlowCloseGateway(FakeGateway):
    """Closing a connection takes longer than a claim lives (a saturated box)."""

    def connect(self, session: str) -> FakeSender:
        return _SlowCloseSender(self.net, session)


class _SlowCloseSender(FakeSender):
    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(1.5)
        await super().__aexit__(*exc)


async def test_a_slow_round_of_letting_go_never_lets_the_other_claims_lapse(net: FakeTelegram, redis: Redis) -> None:
    """Real time, short claims (0.6 s): while the holder spends 1.5 s closing the account another worker
    asked for, its other account's claim is kept alive by the heartbeat, not left to lapse."""
    kept_uid, kept_session = await login(net, "+998900000001")
    asked_uid, asked_session = await login(net, "+998900000002")
    holder = SenderCache(_SlowCloseGateway(net), claims=ConnectionClaims(net.redis, PREFIX, "w1", ttl_s=0.6))
    holder.start(every_s=0.05)
    try:
        await batch(holder, kept_uid, kept_session, 1)
        await batch(holder, asked_uid, asked_session, 2)
        # w2 asks for the second account, as `ConnectionClaims.take` does: w1 starts closing it (1.5 s).
        await redis.sadd(f"{PREFIX}conn-asks:w1", str(asked_uid))  # type: ignore[misc]
        for _ in range(30):  # 1.5 s, five claim lifetimes
            await asyncio.sleep(0.05)
            assert await claim_holder(redis, kept_uid) == "w1"
        assert kept_uid in holder and await net.open_connections(kept_uid) == 1
    finally:
        await holder.close_all()


async def test_close_all_ends_whenever_its_cancel_meets_the_heartbeat(net: FakeTelegram, redis: Redis) -> None:
    """The claims' heartbeat loop must end when `close_all` cancels it, also when the cancel comes as a
    beat finishes (Python 3.11's `asyncio.wait_for` swallowed such a cancel, the loop went on, and
    `close_all` waited for it for ever: a worker's shutdown, a test's teardown)."""
    for attempt in range(200):
        cache = SenderCache(FakeGateway(net), claims=ConnectionClaims(redis, PREFIX, f"w{attempt}", ttl_s=0.006))
        cache.start(every_s=0.001)  # a beat every millisecond: the cancel meets one sooner or later
        await asyncio.sleep(attempt % 7 / 1000)
        closing = asyncio.create_task(cache.close_all())
        done, _ = await asyncio.wait({closing}, timeout=5)
        assert done, f"close_all still waiting for the heartbeat loop (attempt {attempt})"


async def _lose_claims_state(redis: Redis) -> None:
    """What a FLUSHALL, or a restart without persistence, does to the service's keys (the emulated
    Telegram keeps its own, as the real one would)."""
    keys = [k async for k in redis.scan_iter(match=f"{PREFIX}conn*")]
    if keys:
        await redis.delete(*keys)


async def test_after_a_loss_of_state_a_free_claim_is_taken_anew_only_once_the_wait_is_over(redis: Redis) -> None:
    loop = asyncio.get_running_loop()
    w1 = ConnectionClaims(redis, PREFIX, "w1", ttl_s=30, state_loss_wait_s=0.5)
    w2 = ConnectionClaims(redis, PREFIX, "w2", ttl_s=30, state_loss_wait_s=0.5)
    assert await w1.hold("a", own=True)  # a brand new Redis: the holder's own claim, at once
    assert not await w2.hold("b")  # but nobody's new one: the state may just have been lost
    marker = f"{PREFIX}conn-state-since"
    assert await redis.pttl(marker) == -1  # kept until the next loss
    await asyncio.sleep(0.55)
    assert await w2.hold("b")
    await _lose_claims_state(redis)
    assert not await w2.hold("c")
    assert await w1.refresh(["a"]) == []  # the heartbeat re-asserts w1's own claim at once
    assert await claim_holder(redis, "a") == "w1"  # type: ignore[arg-type]
    started = loop.time()
    assert await w2.take("c") >= 0
    assert loop.time() - started >= 0.4  # `take` waited the loss out (from when it was first seen)
    assert await claim_holder(redis, "c") == "w2"  # type: ignore[arg-type]
    assert await w2.take("d") >= 0 and await claim_holder(redis, "d") == "w2"  # type: ignore[arg-type]


async def test_without_a_wait_a_free_claim_is_taken_at_once_after_a_loss(redis: Redis) -> None:
    tool = ConnectionClaims(redis, PREFIX, "tool", ttl_s=30)  # the default: 0
    await _lose_claims_state(redis)
    assert await tool.hold("a")


async def test_a_loss_of_redis_state_never_lets_a_second_worker_connect_beside_the_holder(
    net: FakeTelegram, redis: Redis
) -> None:
    """Real time, claims of 1.5 s and the wait at the TTL, as in production. The holder w1 is cut off
    from Redis (its client points at a closed port) just as Redis loses every claim: it can neither
    re-assert nor hear an ask, and keeps its connection until its trust runs out. w2, taking the
    free claim, must connect only after that: one connection of the account at any time."""
    uid, session = await login(net, "+998900000001")
    kw = redis.connection_pool.connection_kwargs
    own = Redis(host=kw.get("host", "127.0.0.1"), port=kw.get("port", 6379), db=kw.get("db", 0),
                socket_connect_timeout=0.2, socket_timeout=0.2)
    w1 = SenderCache(FakeGateway(net), claims=ConnectionClaims(own, PREFIX, "w1", ttl_s=1.5, state_loss_wait_s=1.5))
    w2 = SenderCache(FakeGateway(net), claims=ConnectionClaims(redis, PREFIX, "w2", ttl_s=1.5, state_loss_wait_s=1.5))
    w1.start(every_s=0.05)
    try:
        await batch(w1, uid, session, 1)
        await asyncio.sleep(0.3)
        own.connection_pool.connection_kwargs["port"] = _free_port()
        await own.connection_pool.disconnect()
        own.connection_pool.reset()
        await _lose_claims_state(redis)
        await batch(w2, uid, session, 2)
        assert uid not in w1
        assert (await net.open_connections(uid), await net.peak_connections(uid)) == (1, 1)
        assert await claim_holder(redis, uid) == "w2"
    finally:
        await w1.close_all()
        await w2.close_all()
        await own.aclose()


async def test_the_heartbeat_renews_thousands_of_claims_in_slices_and_names_the_ones_lost(redis: Redis) -> None:
    """One script call per slice of claims (userbot/claims.py, _REFRESH): every claim of ours gets its TTL
    back, a free one is re-asserted at once, and exactly the ones another worker holds are named, in
    whichever slice they fall."""
    w1 = ConnectionClaims(redis, PREFIX, "w1", ttl_s=30)
    w2 = ConnectionClaims(redis, PREFIX, "w2", ttl_s=30)
    names = [f"acc{n}" for n in range(1_234)]  # three slices of at most 500
    for name in names:
        assert await w1.hold(name)
    lost = {names[0], names[499], names[500], names[1_233]}
    for name in lost:
        await redis.delete(f"{PREFIX}conn:{name}")
        assert await w2.hold(name)
    freed = names[700]
    await redis.delete(f"{PREFIX}conn:{freed}")
    await redis.pexpire(f"{PREFIX}conn:{names[10]}", 1_000)
    assert sorted(await w1.refresh(names)) == sorted(lost)
    assert await claim_holder(redis, freed) == "w1"  # type: ignore[arg-type]
    assert await redis.pttl(f"{PREFIX}conn:{names[10]}") > 25_000
    assert all([await claim_holder(redis, name) == "w2" for name in lost])  # type: ignore[arg-type]
    await _lose_claims_state(redis)
