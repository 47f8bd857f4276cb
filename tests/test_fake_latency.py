"""The emulator's costs: the log-normal latency model (pure) and what the fake network charges and counts."""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from core.settings import Settings
from tests.conftest import make_settings
from userbot.factory import fake_network
from userbot.fake import FakeGateway, FakeGroup, FakeTelegram
from userbot.gateway import GatewayError, OutgoingMedia, Peer, SignedIn
from userbot.latency import LatencyModel, lognormal_draw_ms, lognormal_params

# ---- the pure model --------------------------------------------------------------------------------


def test_params_put_the_median_and_the_p99_where_asked() -> None:
    mu, sigma = lognormal_params(100, 1000)
    assert math.exp(mu) == pytest.approx(100)
    assert math.exp(mu + 2.3263478740408408 * sigma) == pytest.approx(1000)
    assert lognormal_params(50, 50) == (pytest.approx(math.log(50)), 0.0)


@pytest.mark.parametrize(("p50", "p99"), [(0, 10), (-1, 10), (100, 99)])
def test_params_refuse_impossible_quantiles(p50: float, p99: float) -> None:
    with pytest.raises(ValueError):
        lognormal_params(p50, p99)


def test_draws_have_the_asked_quantiles() -> None:
    rng = random.Random(20240601)
    draws = sorted(lognormal_draw_ms(100, 1000, rng) for _ in range(20_000))
    assert draws[10_000] == pytest.approx(100, rel=0.05)
    assert draws[19_800] == pytest.approx(1000, rel=0.15)
    assert draws[-1] <= 10_000  # the cap: ten times the p99


def test_draws_are_reproducible_from_the_generator() -> None:
    first = [lognormal_draw_ms(100, 1000, random.Random(7)) for _ in range(3)]
    assert len(set(first)) == 1
    rng_a, rng_b = random.Random(11), random.Random(11)
    assert [lognormal_draw_ms(100, 1000, rng_a) for _ in range(50)] == [
        lognormal_draw_ms(100, 1000, rng_b) for _ in range(50)
    ]


@given(p50=st.floats(1, 10_000), tail=st.floats(1, 100), seed=st.integers(0, 2**32))
def test_draws_are_positive_and_capped(p50: float, tail: float, seed: int) -> None:
    value = lognormal_draw_ms(p50, p50 * tail, random.Random(seed))
    assert 0 < value <= p50 * tail * 10


def test_model_defaults_charge_nothing_and_validate() -> None:
    free = LatencyModel()
    assert (free.connect_s, free.send_s(random.Random(1))) == (0, 0)
    assert LatencyModel(connect_ms=300).connect_s == pytest.approx(0.3)
    assert LatencyModel(send_p50_ms=80).send_s(random.Random(1)) == pytest.approx(0.08)  # no p99: no tail
    for bad in ({"connect_ms": -1}, {"send_p50_ms": -1}, {"send_p50_ms": 100, "send_p99_ms": 50},
                {"conn_kib": -1}, {"ping_every_s": -1}, {"ping_cpu_ms": -1}):
        with pytest.raises(ValueError):
            LatencyModel(**bad)


# ---- the emulator ----------------------------------------------------------------------------------

GROUP = -1001000000001
PEER = Peer(GROUP, "supergroup", 1)


class Sleeps:
    """Stands in for asyncio.sleep: records what the emulator would wait, waits nothing."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


async def _account(net: FakeTelegram, phone: str = "+998901112233") -> tuple[int, str]:
    uid = await net.add_account(phone)
    await net.add_group(FakeGroup(GROUP, "g", access_hash=1), members=[uid])
    gateway = FakeGateway(net)
    code = await gateway.send_code(phone)
    signed = await gateway.sign_in(code.temp_session, phone, await net.last_code(phone) or "", code.phone_code_hash)
    assert isinstance(signed, SignedIn)
    return uid, signed.session


async def test_connect_and_sends_await_their_latency(redis: Redis) -> None:
    sleeps = Sleeps()
    model = LatencyModel(connect_ms=300, send_p50_ms=100, send_p99_ms=1000)
    net = FakeTelegram(redis, "t:fake:", latency=model, rng=random.Random(5), sleep=sleeps)
    uid, session = await _account(net)
    expected = random.Random(5)
    async with FakeGateway(net).connect(session) as sender:
        assert sleeps.seconds == [0.3]
        await sender.send_text(PEER, "hi", [], 1)
        await sender.upload_media(OutgoingMedia("photo", b"x", "p.jpg", "image/jpeg"))
        await net.forbid(GROUP, uid)
        with pytest.raises(GatewayError):
            await sender.send_text(PEER, "again", [], 2)
    assert sleeps.seconds[1:] == [model.send_s(expected) for _ in range(3)]  # refusals cost a round trip too
    assert len(await net.posted(GROUP)) == 1


async def test_no_latency_waits_nothing(redis: Redis) -> None:
    sleeps = Sleeps()
    net = FakeTelegram(redis, "t:fake:", sleep=sleeps)
    _, session = await _account(net)
    async with FakeGateway(net).connect(session) as sender:
        await sender.send_text(PEER, "hi", [], 1)
    assert sleeps.seconds == []


async def test_an_open_connection_costs_memory_and_keep_alive_pings(redis: Redis) -> None:
    # As a real client's: resident memory while open, and a ping every period costing CPU and a
    # round trip; nothing of it once closed, and the keep-alive ends with the last connection.
    model = LatencyModel(conn_kib=64, ping_every_s=0.05, ping_cpu_ms=2)
    net = FakeTelegram(redis, "t:fake:", latency=model)
    _, session = await _account(net)
    gateway = FakeGateway(net)
    cpu0 = time.thread_time()
    async with gateway.connect(session) as first, gateway.connect(session) as second:
        assert len(first._memory) == len(second._memory) == 64 * 1024
        await asyncio.sleep(0.5)
        pings = await net.ping_total()
    assert pings >= 4  # two connections, each due every 0.05 s, served once per 0.05 s at most
    assert time.thread_time() - cpu0 >= pings * 0.002 * 0.9
    assert len(first._memory) == 0
    await asyncio.sleep(0.2)
    assert net._keepalive_task is not None and net._keepalive_task.done()
    # Counted once both are closed: a ping already under way as they closed may still land after `pings`.
    closed_total = await net.ping_total()
    await asyncio.sleep(0.2)
    assert await net.ping_total() == closed_total  # nothing once closed


async def test_no_connection_cost_charges_nothing(redis: Redis) -> None:
    net = FakeTelegram(redis, "t:fake:")
    _, session = await _account(net)
    async with FakeGateway(net).connect(session) as sender:
        assert len(sender._memory) == 0
    assert net._keepalive_task is None and await net.ping_total() == 0


async def test_connections_are_counted_per_account_and_open(redis: Redis) -> None:
    net = FakeTelegram(redis, "t:fake:")
    uid_a, session_a = await _account(net, "+998901112233")
    uid_b, session_b = await _account(net, "+998901112244")
    gateway = FakeGateway(net)
    assert (await net.connect_total(), await net.open_connections()) == (0, 0)
    async with gateway.connect(session_a), gateway.connect(session_a), gateway.connect(session_b):
        assert (await net.open_connections(), await net.open_connections(uid_a)) == (3, 2)
    async with gateway.connect(session_a):
        pass
    assert (await net.connect_count(uid_a), await net.connect_count(uid_b)) == (3, 1)
    assert await net.open_connections(uid_a) == 0
    assert (await net.peak_connections(uid_a), await net.peak_connections(uid_b)) == (2, 1)
    assert (await net.connect_total(), await net.open_connections()) == (4, 0)


async def test_a_refused_connect_is_not_counted(redis: Redis) -> None:
    net = FakeTelegram(redis, "t:fake:")
    uid, session = await _account(net)
    await net.revoke_sessions(uid)
    with pytest.raises(GatewayError) as info:
        async with FakeGateway(net).connect(session):
            pass
    assert info.value.code == "SESSION_REVOKED"
    assert (await net.connect_count(uid), await net.connect_total(), await net.open_connections()) == (0, 0, 0)


def _settings(**overrides: Any) -> Settings:
    return make_settings("postgresql://u@127.0.0.1/db", "redis://127.0.0.1/1", "http://127.0.0.1:1", **overrides)


def test_factory_passes_the_latency_settings_through(redis: Redis) -> None:
    tuned = _settings(fake_connect_ms=300, fake_send_p50_ms=100, fake_send_p99_ms=1000, fake_conn_kib=48,
                      fake_ping_every_s=60, fake_ping_cpu_ms=1.5)
    assert fake_network(tuned, redis).latency == LatencyModel(300, 100, 1000, conn_kib=48, ping_every_s=60,
                                                              ping_cpu_ms=1.5)
    assert fake_network(_settings(), redis).latency == LatencyModel()


def test_settings_refuse_a_p99_below_the_p50() -> None:
    with pytest.raises(ValueError, match="FAKE_SEND_P99_MS"):
        _settings(fake_send_p50_ms=100, fake_send_p99_ms=50)
