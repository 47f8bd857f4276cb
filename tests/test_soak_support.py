"""What the soak harness relies on: the emulator on its own Redis (FAKE_REDIS_URL), and the verdict
rules that turn the delivery ledger and the emulator's posts into duplicates, losses, early and
overlapping cycles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.seed import TG_BASE, USER_BASE
from bench.soak_ledger import Cycle, Delivery, Ledger, Post, judge
from core.settings import Settings
from devtools.services import claim_redis_db
from tests.conftest import _REDIS_URL
from userbot.factory import build_gateway
from userbot.fake import FakeGateway

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
