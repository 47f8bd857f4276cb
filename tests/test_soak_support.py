"""What the soak harness relies on: the emulator on its own Redis (FAKE_REDIS_URL), the emulator's
memory of random ids and of a dead process's connections, the long outages' injectors, and the verdict
rules that turn the delivery ledger and the emulator's posts into duplicates, losses, early and
overlapping cycles, doubled sessions and re-sends."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.seed import TG_BASE, USER_BASE, seed
from bench.soak_ledger import Cycle, Delivery, Ledger, Post, judge
from bench.soak_outages import (
    OUTAGE_PLAN,
    freeze_for,
    hang_account,
    plan_for,
    process_state,
    stop_postgres_for,
    stop_redis_for,
)
from bench.soak_services import PrivatePostgres, PrivateRedis
from core.settings import Settings
from devtools.services import claim_redis_db
from tests.conftest import _REDIS_URL, make_settings
from userbot.factory import build_gateway, fake_network
from userbot.fake import FakeGateway, FakeGroup, FakeTelegram
from userbot.gateway import GatewayError, Peer, SignedIn

# ---- FAKE_REDIS_URL ---------------------------------------------------------------------------------


@pytest.fixture
def other_redis_url() -> Iterator[str]:
    url, release = claim_redis_db(_REDIS_URL)
    with SyncRedis.from_url(url) as r:
        r.flushdb()
    yield url
    with SyncRedis.from_url(url) as r:
        r.flushdb()
    release()


async def test_fake_network_survives_a_flush_of_the_service_redis(
    settings: Settings, redis: Redis, other_redis_url: str
) -> None:
    separate = settings.model_copy(update={"fake_redis_url": other_redis_url})
    gateway = build_gateway(separate, redis)
    assert isinstance(gateway, FakeGateway)
    await gateway.net.add_account("+998901234567", tg_user_id=777)

    await redis.flushdb()

    code = await gateway.send_code("+998901234567")
    assert code.phone_code_hash
    with SyncRedis.from_url(other_redis_url) as r:
        assert r.exists(f"{settings.redis_prefix}fake:acct:+998901234567")
    await gateway.net.redis.aclose()


async def test_fake_network_defaults_to_the_service_redis(settings: Settings, redis: Redis) -> None:
    assert settings.fake_redis_url is None
    gateway = build_gateway(settings, redis)
    assert isinstance(gateway, FakeGateway)
    assert gateway.net.redis is redis


# ---- the verdict ----------------------------------------------------------------------------------

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
OWNER = USER_BASE + 1
SENDER = TG_BASE + 1
CHATS = (-100, -200)


def _cycle(cid: int, seq: int, scheduled: datetime, *, finished: bool = True, sent: int = 2) -> Cycle:
    started = scheduled + timedelta(seconds=1)
    return Cycle(id=cid, owner_id=OWNER, seq=seq, interval_minutes=1, scheduled_at=scheduled, started_at=started,
                 finished_at=started + timedelta(seconds=5) if finished else None, created_at=scheduled,
                 status="done" if finished else "running", total=2, sent=sent, failed=0, cancelled=0)


def _ledger(*cycle_ids: int) -> Ledger:
    ledger = Ledger("unused")
    for cid in cycle_ids:
        for n, chat in enumerate(CHATS):
            ledger.by_rid[cid * 10 + n] = Delivery(cid * 10 + n, cid, OWNER, chat, "sent")
    return ledger


def _posts(cid: int, scheduled: datetime, *, offset_s: float = 2) -> list[Post]:
    return [Post(chat, SENDER, cid * 10 + n, (scheduled + timedelta(seconds=offset_s + n)).timestamp())
            for n, chat in enumerate(CHATS)]


def _clean_run() -> tuple[list[Cycle], Ledger, list[Post]]:
    t1 = T0 + timedelta(minutes=1)
    return [_cycle(1, 1, T0), _cycle(2, 2, t1)], _ledger(1, 2), [*_posts(1, T0), *_posts(2, t1)]


def test_a_clean_run_passes() -> None:
    cycles, ledger, posts = _clean_run()
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1))
    assert (v.expected, v.sent_once, v.sent_twice, v.lost, v.early, v.overlapping) == (4, 4, 0, 0, 0, 0)
    assert v.ok


def test_the_same_delivery_posted_twice_under_two_random_ids_is_a_duplicate() -> None:
    cycles, ledger, posts = _clean_run()
    ledger.by_rid[999] = Delivery(999, 1, OWNER, CHATS[0], "sent")  # a second row for one (cycle, chat)
    posts.append(Post(CHATS[0], SENDER, 999, (T0 + timedelta(seconds=9)).timestamp()))
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1))
    assert v.sent_twice == 1
    assert not v.ok


def test_recorded_sent_but_never_posted_is_lost() -> None:
    cycles, ledger, posts = _clean_run()
    v = judge(cycles, ledger, posts[1:], cut=T0 + timedelta(hours=1))
    assert v.lost == 1
    assert v.lost_detail["recorded sent, never posted"] == 1
    assert not v.ok


def test_a_delivery_left_pending_is_lost() -> None:
    cycles, ledger, posts = _clean_run()
    cycles[1] = _cycle(2, 2, T0 + timedelta(minutes=1), finished=False, sent=1)
    v = judge(cycles, ledger, posts[:3], cut=T0 + timedelta(hours=1))
    assert v.lost_detail["never terminal"] == 1
    assert v.unfinished_cycles == 1
    assert not v.ok


def test_a_cycle_scheduled_before_its_interval_is_early() -> None:
    t1 = T0 + timedelta(seconds=30)
    cycles = [_cycle(1, 1, T0), _cycle(2, 2, t1)]
    v = judge(cycles, _ledger(1, 2), [*_posts(1, T0), *_posts(2, t1)], cut=T0 + timedelta(hours=1))
    assert v.early == 1


def test_a_post_before_the_scheduled_time_is_early() -> None:
    t1 = T0 + timedelta(minutes=1)
    cycles = [_cycle(1, 1, T0), _cycle(2, 2, t1)]
    v = judge(cycles, _ledger(1, 2), [*_posts(1, T0), *_posts(2, t1, offset_s=-5)], cut=T0 + timedelta(hours=1))
    assert v.early == 1


def test_sends_of_two_cycles_interleaving_overlap() -> None:
    t1 = T0 + timedelta(minutes=1)
    cycles = [_cycle(1, 1, T0), _cycle(2, 2, t1)]
    late_tail = Post(CHATS[1], SENDER, 11, (t1 + timedelta(seconds=30)).timestamp())
    v = judge(cycles, _ledger(1, 2), [_posts(1, T0)[0], late_tail, *_posts(2, t1)], cut=T0 + timedelta(hours=1))
    assert v.overlapping == 1


def test_a_post_no_delivery_explains_fails_the_run() -> None:
    cycles, ledger, posts = _clean_run()
    posts.append(Post(CHATS[0], SENDER, 123456, T0.timestamp()))
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1))
    assert v.unattributed_posts == 1
    assert not v.ok


def test_cycles_created_after_the_cut_are_not_judged() -> None:
    cycles, ledger, posts = _clean_run()
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(seconds=30))
    assert (v.cycles, v.expected) == (1, 2)


def test_a_group_posted_again_less_than_the_interval_after_its_last_post_is_too_close() -> None:
    """The cycle was held past its slot (its second group went out 50 s late); the next cycle started on
    time, so that group got the broadcast twice 15 s apart."""
    t1 = T0 + timedelta(minutes=1)
    cycles = [_cycle(1, 1, T0), _cycle(2, 2, t1)]
    held = [_posts(1, T0)[0], Post(CHATS[1], SENDER, 11, (T0 + timedelta(seconds=50)).timestamp())]
    v = judge(cycles, _ledger(1, 2), [*held, *_posts(2, t1)], cut=T0 + timedelta(hours=1))
    assert v.too_close == 1 and v.early == 0
    assert not v.ok


def test_two_connections_of_one_account_at_once_fail_the_run() -> None:
    cycles, ledger, posts = _clean_run()
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1), peaks={SENDER: 2, SENDER + 1: 1})
    assert (v.peak_connections, v.sessions_doubled) == (2, 1)
    assert not v.ok
    clean = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1), peaks={SENDER: 1, SENDER + 1: 1})
    assert (clean.peak_connections, clean.sessions_doubled) == (1, 0)
    assert clean.ok


def test_a_random_id_posted_again_after_telegram_forgot_it_is_a_resend() -> None:
    cycles, ledger, posts = _clean_run()
    posts.append(Post(CHATS[0], SENDER, 10, posts[0].at + 61))  # cycle 1's first post, a minute later
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1))
    assert v.resends == 1
    assert v.resend_gaps_s == [pytest.approx(61)]
    assert v.sent_twice == 1  # the same delivery, so it is a duplicate too
    assert not v.ok


def test_the_same_random_id_of_two_senders_is_no_resend() -> None:
    cycles, ledger, posts = _clean_run()
    posts.append(Post(CHATS[0], SENDER + 1, 10, posts[0].at + 61))  # someone else's post: unattributed
    v = judge(cycles, ledger, posts, cut=T0 + timedelta(hours=1))
    assert (v.resends, v.unattributed_posts) == (0, 1)


# ---- the emulator's memory --------------------------------------------------------------------------

GROUP = -1001234


async def _signed_in(net: FakeTelegram, phone: str = "+998907654321") -> tuple[int, str]:
    uid = await net.add_account(phone)
    await net.add_group(FakeGroup(GROUP, "g", access_hash=1), members=[uid])
    gateway = FakeGateway(net)
    code = await gateway.send_code(phone)
    signed = await gateway.sign_in(code.temp_session, phone, await net.last_code(phone) or "", code.phone_code_hash)
    assert isinstance(signed, SignedIn)
    return uid, signed.session


async def _send_twice_apart(net: FakeTelegram, gap_s: float) -> tuple[bool, bool]:
    """The same random_id sent, sent again at once, and again after `gap_s`: whether each repeat was
    answered as a duplicate."""
    _, session = await _signed_in(net)
    peer = Peer(GROUP, "supergroup", 1)
    async with FakeGateway(net).connect(session) as sender:
        first = await sender.send_text(peer, "hi", [], random_id=42)
        at_once = await sender.send_text(peer, "hi", [], random_id=42)
        await asyncio.sleep(gap_s)
        later = await sender.send_text(peer, "hi", [], random_id=42)
    assert not first.duplicate
    return at_once.duplicate, later.duplicate


async def test_the_emulator_forgets_a_random_id_after_its_ttl(redis: Redis, settings: Settings) -> None:
    net = FakeTelegram(redis, prefix=f"{settings.redis_prefix}fake:", random_id_ttl_s=1)
    assert await _send_twice_apart(net, 1.2) == (True, False)
    assert len(await net.posted(GROUP)) == 2  # the resend is a second message


async def test_without_a_ttl_the_emulator_remembers_a_random_id(net: FakeTelegram) -> None:
    assert await _send_twice_apart(net, 1.2) == (True, True)
    assert len(await net.posted(GROUP)) == 1


def _settings(**overrides: Any) -> Settings:
    return make_settings("postgresql://u@127.0.0.1/db", "redis://127.0.0.1/1", "http://127.0.0.1:1", **overrides)


def test_random_id_ttl_setting_defaults_to_for_ever_and_is_passed_through(redis: Redis) -> None:
    assert _settings().fake_random_id_ttl_s is None
    assert fake_network(_settings(), redis).random_id_ttl_s is None
    assert fake_network(_settings(fake_random_id_ttl_s=60), redis).random_id_ttl_s == 60
    for bad in (0, -5):
        with pytest.raises(ValueError, match="fake_random_id_ttl_s"):
            _settings(fake_random_id_ttl_s=bad)


async def test_a_dead_process_connections_are_closed_and_the_peak_stays_one(net: FakeTelegram) -> None:
    """A SIGKILLed worker never says goodbye, but its sockets close with it: another worker's
    connection afterwards is the only one open."""
    uid, session = await _signed_in(net)
    dead = FakeGateway(net).connect(session)
    await dead.__aenter__()  # never left: the process "dies" holding it
    assert await net.open_connections(uid) == 1
    assert await net.process_died(os.getpid()) == 1
    assert await net.open_connections(uid) == 0
    async with FakeGateway(net).connect(session):
        assert await net.open_connections(uid) == 1
    assert (await net.peak_connections(uid), await net.open_connections(uid)) == (1, 0)
    assert await net.process_died(os.getpid()) == 0  # nothing left to close


# ---- the long outages ---------------------------------------------------------------------------------


def test_the_outage_plan_runs_one_at_a_time_inside_the_default_run() -> None:
    default_fault_s = 8 * 60
    assert plan_for(default_fault_s) == list(OUTAGE_PLAN)
    services = [p for p in OUTAGE_PLAN if p.kind != "hang"]  # the hang is one account's, under the others
    for before, after in itertools.pairwise(services):
        assert before.at_s + before.seconds < after.at_s
    assert {(p.kind, p.seconds) for p in OUTAGE_PLAN} == {
        ("hang", 180), ("redis-kept", 45), ("redis-empty", 120), ("postgres", 60), ("freeze", 40)}
    assert [p.kind for p in plan_for(200)] == ["hang", "redis-kept", "freeze"]


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, "t")
    yield server
    server.remove()


@pytest.mark.parametrize("keep", [True, False])
def test_redis_stopped_keeps_its_data_or_comes_back_empty(private_redis: PrivateRedis, keep: bool) -> None:
    with SyncRedis.from_url(private_redis.url) as r:
        r.set("queue", "job")
        r.set("claim", "me", px=300)  # lapses while the server is away
    seen: list[bool] = []

    def probe() -> None:
        time.sleep(0.4)
        with SyncRedis.from_url(private_redis.url, socket_connect_timeout=0.5) as r:
            try:
                r.ping()
                seen.append(True)
            except Exception:
                seen.append(False)

    prober = threading.Thread(target=probe)
    prober.start()
    stopped, started = stop_redis_for(private_redis, 1.0, keep_data=keep)
    prober.join()
    assert seen == [False]  # away, not flushed
    assert started - stopped >= 1.0
    with SyncRedis.from_url(private_redis.url) as r:
        assert r.get("queue") == (b"job" if keep else None)
        assert r.get("claim") is None


def test_postgres_stop_waits_its_time_between_stop_and_start() -> None:
    calls: list[tuple[str, float]] = []

    class Pg:
        def stop(self, mode: str) -> None:
            calls.append((mode, time.monotonic()))

        def start(self) -> None:
            calls.append(("start", time.monotonic()))

    stopped, started = stop_postgres_for(Pg(), 0.3)  # type: ignore[arg-type]
    assert [c for c, _ in calls] == ["fast", "start"]
    assert calls[1][1] - calls[0][1] >= 0.29 and started - stopped >= 0.29
    assert PrivatePostgres.stop.__defaults__ == ("fast",)


def test_a_frozen_process_stands_still_and_runs_on_after() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        states: list[str] = []
        wake = threading.Event()
        freezer = threading.Thread(target=lambda: freeze_for(proc, 20, wake))
        freezer.start()
        time.sleep(0.3)
        states.append(process_state(proc.pid))
        wake.set()  # ends the freeze early: the SIGCONT is what is tested
        freezer.join()
        time.sleep(0.1)
        states.append(process_state(proc.pid))
        assert states == ["T", "S"]
    finally:
        proc.kill()
        proc.wait()


async def test_a_hung_account_is_posted_to_but_never_answered_until_the_hang_lapses(
    net: FakeTelegram, redis_url: str
) -> None:
    uid, session = await _signed_in(net)
    since, until = await asyncio.to_thread(hang_account, redis_url, net.p, uid, 1.0)
    assert until - since == pytest.approx(1.0)
    peer = Peer(GROUP, "supergroup", 1)
    async with FakeGateway(net, request_timeout_s=0.3).connect(session) as sender:
        with pytest.raises(GatewayError) as info:
            await sender.send_text(peer, "hi", [], random_id=7)
        assert info.value.code == "TIMEOUT"
        assert len(await net.posted(GROUP)) == 1  # it reached "Telegram"
        await asyncio.sleep(max(0.0, until - time.time()) + 0.1)
        again = await sender.send_text(peer, "hi", [], random_id=7)
    assert again.duplicate


async def test_seeded_broadcasters_post_every_group_from_their_account(settings: Settings, pool) -> None:
    """The benchmarks' and the soak's fixture data: every seeded group names its account, so the tick's
    rounds carry a delivery for each (a group with no account is left out of a round)."""
    from core.crypto import SecretBox
    from jobs.tick import tick

    seed(settings.database_url, settings.redis_url, users=3, groups_per_user=4, interval_minutes=5,
         box=SecretBox(settings.session_keys), redis_prefix=f"{settings.redis_prefix}fake:", spread_s=0)
    summary = await tick(pool, settings)
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*), count(account_id) FROM deliveries")
        assert await cur.fetchone() == (12, 12)
    assert len(summary.cycle_ids) == 3
