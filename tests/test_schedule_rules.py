"""core.schedule: jitter, due times, continuation, backoff, idempotency keys (pure, no I/O)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from core import schedule

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_cycle_jitter_is_deterministic_and_bounded() -> None:
    values = [schedule.cycle_jitter_ms(u, c, 15000) for u in range(1, 200) for c in range(1, 5)]
    assert values == [schedule.cycle_jitter_ms(u, c, 15000) for u in range(1, 200) for c in range(1, 5)]
    assert all(0 <= v <= 15000 for v in values)


def test_cycle_jitter_spreads_users() -> None:
    values = {schedule.cycle_jitter_ms(u, 1, 15000) for u in range(1000)}
    assert len(values) > 900
    # roughly uniform: every 3-second band of the window gets some
    bands = {v // 3000 for v in values}
    assert {0, 1, 2, 3, 4} <= bands


def test_cycle_jitter_is_the_fixed_hash_mod_window() -> None:
    assert schedule.cycle_jitter_ms(42, 7, 100) == schedule.stable_hash("42:7") % 101
    assert schedule.stable_hash("42:7") == int.from_bytes(
        __import__("hashlib").blake2b(b"42:7", digest_size=8).digest(), "big")


@pytest.mark.parametrize("max_ms", [0, -1])
def test_zero_jitter_window_disables_jitter(max_ms: int) -> None:
    assert {schedule.cycle_jitter_ms(u, 3, max_ms) for u in range(50)} == {0}


def test_cycle_jitter_changes_with_cycle() -> None:
    assert len({schedule.cycle_jitter_ms(5, c, 15000) for c in range(100)}) > 90


@pytest.mark.parametrize(
    ("scheduled", "interval", "now", "expected"),
    [
        (T0, 10, T0, T0 + timedelta(minutes=10)),  # on time: one interval later
        (T0, 10, T0 + timedelta(minutes=3), T0 + timedelta(minutes=10)),  # late start keeps the clock
        (T0, 10, T0 + timedelta(minutes=25), T0 + timedelta(minutes=25)),  # far behind: no catch-up burst
        (T0, 10, T0 + timedelta(minutes=10), T0 + timedelta(minutes=10)),
        (T0, 3, T0 - timedelta(seconds=30), T0 + timedelta(minutes=3)),  # window start before due
    ],
)
def test_next_run_at(scheduled: datetime, interval: int, now: datetime, expected: datetime) -> None:
    assert schedule.next_run_at(scheduled, interval, now) == expected


def test_continuation_delay_bounds_and_determinism() -> None:
    values = [schedule.continuation_delay_ms(1500, 1500, cid, step) for cid in range(50) for step in range(5)]
    assert all(1500 <= v <= 3000 for v in values)
    assert len(set(values)) > 50
    assert schedule.continuation_delay_ms(1500, 1500, 9, 2) == schedule.continuation_delay_ms(1500, 1500, 9, 2)
    assert schedule.continuation_delay_ms(1500, 0, 9, 2) == 1500
    assert schedule.continuation_delay_ms(0, 0, 9, 2) == 0


def test_continuation_at_waits_for_the_earliest_due_delivery() -> None:
    assert schedule.continuation_at(T0, 2000, None) == T0 + timedelta(seconds=2)
    assert schedule.continuation_at(T0, 2000, T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=2)
    assert schedule.continuation_at(T0, 2000, T0 + timedelta(seconds=30)) == T0 + timedelta(seconds=30)


@pytest.mark.parametrize(("retry", "core"), [(0, 2000), (1, 4000), (2, 8000), (3, 16000), (6, 120000), (50, 120000)])
def test_backoff_doubles_up_to_the_cap_with_at_most_20_percent_jitter(retry: int, core: int) -> None:
    values = [schedule.backoff_ms(retry, 2000, 120000, f"d{k}") for k in range(200)]
    assert all(core <= v <= core * 1.2 for v in values)
    assert len(set(values)) > 1  # jitter actually spreads
    assert schedule.backoff_ms(retry, 2000, 120000, "d1") == schedule.backoff_ms(retry, 2000, 120000, "d1")


def test_random_id_is_deterministic_signed_63_bit_and_distinct() -> None:
    ids = [schedule.random_id(d, c) for d in range(1, 300) for c in range(1, 10)]
    assert ids == [schedule.random_id(d, c) for d in range(1, 300) for c in range(1, 10)]
    assert len(set(ids)) == len(ids)
    assert all(-(1 << 62) <= i < (1 << 62) and i != 0 for i in ids)
    assert any(i < 0 for i in ids) and any(i > 0 for i in ids)
    assert schedule.random_id(1, 2) != schedule.random_id(2, 1)


def test_send_pause_within_bounds() -> None:
    rng = random.Random(1)
    values = [schedule.send_pause_s(1000, 2000, rng) for _ in range(500)]
    assert all(1.0 <= v <= 2.0 for v in values)
    assert schedule.send_pause_s(0, 0) == 0.0


def test_flood_jitter_bounded() -> None:
    assert all(0 <= schedule.flood_jitter_ms(str(k)) <= 1000 for k in range(100))


@pytest.mark.parametrize(
    ("stored", "last", "interval", "expected"),
    [
        (T0, None, 5, T0),  # a first cycle: the stored start
        (T0 + timedelta(minutes=5), T0, 5, T0 + timedelta(minutes=5)),  # on time
        (T0 + timedelta(seconds=289), T0, 5, T0 + timedelta(minutes=5)),  # stored too early: the bound
        (T0 + timedelta(minutes=9), T0, 5, T0 + timedelta(minutes=9)),  # pushed later: kept
        (T0 + timedelta(minutes=3), T0, 60, T0 + timedelta(minutes=60)),  # interval longer since
    ],
)
def test_cycle_start_never_earlier_than_an_interval_after_the_previous(
    stored: datetime, last: datetime | None, interval: int, expected: datetime
) -> None:
    assert schedule.cycle_start(stored, last, interval) == expected


def test_the_claim_horizon_covers_the_batchs_own_pacing_within_half_the_lease() -> None:
    # The defaults: 20 s ahead + 19 pauses of 1 s.
    assert schedule.claim_horizon_ms(20000, 20, 1000, 120) == 39000
    # No pause (tests, the soak): CLAIM_AHEAD_MS alone.
    assert schedule.claim_horizon_ms(20000, 20, 0, 20) == 20000
    # A short lease bounds the pacing part to half of it...
    assert schedule.claim_horizon_ms(5000, 20, 1000, 20) == 10000
    # ...but never takes back what CLAIM_AHEAD_MS asks for.
    assert schedule.claim_horizon_ms(30000, 20, 1000, 20) == 30000
    assert schedule.claim_horizon_ms(0, 1, 1000, 120) == 0  # one send: nothing to pace


@pytest.mark.parametrize(("left_s", "timeout_s", "lease_s", "allowed"), [
    (60, 20, 120, True),
    (25.001, 20, 120, True),  # request + record margin (20 + 5 s) still fits
    (25, 20, 120, False),
    (5, 20, 120, False),
    (-1, 20, 120, False),  # already past
    (1.3, 20, 5, True),  # a short lease: the margin is a quarter of it (1.25 s)
    (1.25, 20, 5, False),
    (0.3, 20, 1, True),
])
def test_a_delivery_is_sent_only_with_time_left_on_its_lease(
    left_s: float, timeout_s: float, lease_s: int, allowed: bool
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert schedule.lease_allows_send(now, now + timedelta(seconds=left_s), timeout_s, lease_s) is allowed
    assert schedule.lease_allows_send(now, None, timeout_s, lease_s)  # not leased: nothing to outlive
