"""jobs/locks.py: one holder per account, renewed while held, `lost` once someone else has it, and a
release that never deletes another holder's lock (real Redis)."""

from __future__ import annotations

import asyncio

from jobs.locks import AccountLock

KEY = "tgcast-test:lock:account:1"


async def test_one_holder_at_a_time_and_release_frees_it(redis) -> None:
    first, second = AccountLock(redis, KEY, 60_000), AccountLock(redis, KEY, 60_000)
    assert await first.acquire()
    assert not await second.acquire()
    await second.release()  # not the holder: nothing happens
    assert await redis.exists(KEY)
    await first.release()
    assert not await redis.exists(KEY)
    assert await second.acquire()
    await second.release()


async def test_renewal_keeps_the_lock_past_its_ttl(redis) -> None:
    lock = AccountLock(redis, KEY, 300)
    assert await lock.acquire()
    token = await redis.get(KEY)
    try:
        await asyncio.sleep(0.9)  # three TTLs: only the renewals keep it
        assert await redis.get(KEY) == token and not lock.lost
    finally:
        await lock.release()
    assert not await redis.exists(KEY)


async def test_taken_lock_is_reported_lost_and_left_to_its_new_holder(redis) -> None:
    lock = AccountLock(redis, KEY, 300)
    assert await lock.acquire()
    await redis.set(KEY, "another-worker", px=60_000)  # ours expired and someone took it
    for _ in range(100):
        if lock.lost:
            break
        await asyncio.sleep(0.05)
    assert lock.lost
    await lock.release()
    assert await redis.get(KEY) == b"another-worker"
