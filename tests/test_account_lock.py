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


async def test_a_batch_cancelled_while_releasing_lets_go_and_ends_cancelled(redis) -> None:
    """The cancel of the releasing batch (its job timeout, a stopping worker's deadline) is not
    swallowed by the wait for the renewal task, and the lock is deleted all the same."""
    lock = AccountLock(redis, KEY, 60_000)
    assert await lock.acquire()
    renewer = lock._renewer
    assert renewer is not None
    releasing = asyncio.create_task(lock.release())
    await asyncio.sleep(0)  # inside the release, waiting for the renewal task to end
    releasing.cancel()
    results = await asyncio.gather(releasing, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert not await redis.exists(KEY)
    assert renewer.done()


async def test_a_renewal_that_swallows_its_cancel_does_not_hold_the_release(redis, monkeypatch) -> None:
    """Whatever the renewal awaits may eat a cancel; the release still ends within its bound, deletes
    the lock, and the renewal stops at its next wake-up instead of renewing for ever."""
    monkeypatch.setattr("jobs.locks.RENEWER_EXIT_S", 0.2)
    lock = AccountLock(redis, KEY, 300)
    renewals = 0
    inside = asyncio.Event()

    async def deaf_reacquire() -> None:
        nonlocal renewals
        renewals += 1
        inside.set()
        try:
            await asyncio.sleep(0.3)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # the cancel is eaten; the renewal goes on

    assert await lock.acquire()
    monkeypatch.setattr(lock._lock, "reacquire", deaf_reacquire)
    renewer = lock._renewer
    assert renewer is not None
    await asyncio.wait_for(inside.wait(), 2)
    await asyncio.wait_for(lock.release(), 2)
    assert not await redis.exists(KEY)
    await asyncio.wait_for(asyncio.shield(renewer), 2)  # it ended by itself, on the released flag
    assert renewals == 1
