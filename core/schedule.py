"""Timing rules of the broadcast runtime: jitter, due times, continuation, backoff, idempotency keys.

Pure functions, no I/O. Everything that must be the same on every replica and after a restart is
derived from a fixed hash (blake2b; PostgreSQL's own for the idempotency keys), never from Python's per-process
`hash()` or a global RNG.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.pg_hash import hashint8extended


def stable_hash(text: str) -> int:
    """A 64-bit unsigned hash that is the same in every process and every Python version."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def cycle_jitter_ms(user_id: int, cycle: int, jitter_max_ms: int) -> int:
    """docs/runtime.md, "Jitter": `H("<user_id>:<cycle>") mod (JITTER_MAX_MS + 1)`."""
    if jitter_max_ms <= 0:
        return 0
    return stable_hash(f"{user_id}:{cycle}") % (jitter_max_ms + 1)


def next_run_at(scheduled_at: datetime, interval_minutes: int, now: datetime) -> datetime:
    """Never earlier than one interval after the previous scheduled start, and never in the past:
    a late tick does not make cycles burst to catch up."""
    return max(scheduled_at + timedelta(minutes=interval_minutes), now)


def cycle_start(stored_next_run_at: datetime, last_scheduled_at: datetime | None, interval_minutes: int) -> datetime:
    """The scheduled start of a config's next cycle: its stored `next_run_at`, but never earlier than
    one interval after the previous cycle's scheduled start (a stale or hand-edited `next_run_at`, or
    an interval shortened since, must not bring the next cycle closer)."""
    if last_scheduled_at is None:
        return stored_next_run_at
    return max(stored_next_run_at, last_scheduled_at + timedelta(minutes=interval_minutes))


def claim_horizon_ms(claim_ahead_ms: int, batch_size: int, send_pause_min_ms: int, lease_s: int) -> int:
    """How far ahead a batch claims: CLAIM_AHEAD_MS plus the time its own sends take at the shortest
    pause. A batch of 20 needs 19 pauses (19 s at least) anyway, so a delivery due within that span
    costs it no extra waiting, and claiming it saves a continuation job: each group's spacing spreads a
    cycle's deliveries over as long as the previous cycle took (~30 s), and with only CLAIM_AHEAD_MS most
    cycles at full load needed a second batch (60 % in the capacity benchmark). Never more than half
    the lease (unless CLAIM_AHEAD_MS alone is), so the rows are sent long before their lease runs out."""
    spread = claim_ahead_ms + max(0, batch_size - 1) * max(0, send_pause_min_ms)
    return min(spread, max(claim_ahead_ms, lease_s * 1000 // 2))


# Beyond the request itself, what a send needs before its lease ends: the "sent" record's linger and
# statement, and the loop's own lag on a busy worker.
SEND_RECORD_MARGIN_S = 5.0


def batch_overdue_s(lease_s: int) -> float:
    """After how long a running send batch is reported with where it waits (worker/loop_worker.py,
    `stuck_after`). A batch sends only within its lease and ends with a few statements after it, so
    twice the lease (at least a minute) is past any healthy batch, and far below the job timeout that
    would end it: a report only, which a large upload on a slow link may also earn."""
    return max(60.0, 2.0 * lease_s)


def lease_allows_send(now: datetime, lease_until: datetime | None, request_timeout_s: float, lease_s: int) -> bool:
    """Whether a claimed delivery may still be sent: its request (bounded by REQUEST_TIMEOUT_S) and its
    record must end before the lease does, or the tick gives the row back meanwhile and it is posted
    again later. The margin is at most a quarter of the lease, so a short lease (tests, the soak) still
    sends."""
    if lease_until is None:
        return True
    margin_s = min(request_timeout_s + SEND_RECORD_MARGIN_S, lease_s / 4)
    return now + timedelta(seconds=margin_s) < lease_until


# Of a warm shutdown's WORKER_SHUTDOWN_S, the end is kept for the exit itself: the queue's hand-over,
# closing the account connections (each gives its claim up), the pool.
SHUTDOWN_EXIT_RESERVE_S = 5.0


@dataclass(frozen=True, slots=True)
class ShutdownPlan:
    """Seconds after the signal of a warm shutdown."""

    send_s: float  # batches start no send from then on; they give the rest back and end
    cancel_s: float  # batches still running then (a hung request, a wait) are cancelled


def shutdown_plan(worker_shutdown_s: float, request_timeout_s: float) -> ShutdownPlan:
    """docs/worker.md, "Shutdown". The exit keeps the last fifth of WORKER_SHUTDOWN_S (5 s at most);
    batches still running before that are cancelled, so a send may start only while its request
    (bounded by REQUEST_TIMEOUT_S) would end before the cancel, and at most in the first half of the
    time left, so that a long REQUEST_TIMEOUT_S still lets the batches send for a while."""
    cancel_s = worker_shutdown_s - min(SHUTDOWN_EXIT_RESERVE_S, worker_shutdown_s / 5)
    send_s = cancel_s - min(request_timeout_s, cancel_s / 2)
    return ShutdownPlan(send_s, cancel_s)


def continuation_delay_ms(cont_delay_ms: int, cont_jitter_ms: int, cycle_id: int, step: int) -> int:
    """`CONT_DELAY_MS` + a jitter in [0, CONT_JITTER_MS], deterministic per (cycle, step) so a
    retried enqueue lands on the same time."""
    jitter = stable_hash(f"cont:{cycle_id}:{step}") % (cont_jitter_ms + 1) if cont_jitter_ms > 0 else 0
    return cont_delay_ms + jitter


def continuation_at(now: datetime, delay_ms: int, earliest_due: datetime | None) -> datetime:
    """docs/runtime.md, "Continuation and finishing": `max(now + delay, earliest next_attempt_at)`."""
    at = now + timedelta(milliseconds=delay_ms)
    return max(at, earliest_due) if earliest_due is not None else at


def backoff_ms(retry: int, base_ms: int, max_ms: int, key: str) -> int:
    """`min(RETRY_MAX_MS, RETRY_BASE_MS * 2^retry)` plus a jitter of at most 20 % of that, derived
    from `key` (the delivery) so it is reproducible."""
    core = min(max_ms, base_ms * (1 << min(max(retry, 0), 40)))
    return core + stable_hash(f"backoff:{key}:{retry}") % (core // 5 + 1)


def flood_jitter_ms(key: str, span_ms: int = 1000) -> int:
    """A small spread so the deliveries and jobs waiting on one flood pause do not all wake at once."""
    return stable_hash(f"flood:{key}") % (span_ms + 1)


def random_id(delivery_id: int, cycle_id: int) -> int:
    """The idempotency key of one delivery: a signed 63-bit integer, never 0, the same on every
    attempt, so Telegram (and the emulator) de-duplicate a resend after a crash. The tick writes it
    in SQL (db/tick.py, RANDOM_ID_SQL, the same formula), so it is a hash PostgreSQL has built in:
    `hashint8extended(delivery id, cycle id)` (core/pg_hash.py), shifted right by one to be 63-bit. The
    key is stored with its row, so a change of formula only ever applies to rows written after it."""
    return (hashint8extended(delivery_id, cycle_id) >> 1) or 1


def send_pause_s(min_ms: int, max_ms: int, rng: random.Random | None = None) -> float:
    """The pause between two sends of one account, uniformly random in [min, max] milliseconds."""
    if max_ms <= 0:
        return 0.0
    return (rng or random).uniform(min_ms, max_ms) / 1000
