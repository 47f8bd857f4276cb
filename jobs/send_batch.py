"""The send-batch job (docs/runtime.md, "Worker"): one micro-batch of one cycle, from one account.

`send_batch(cycle_id, attempt)` is what RQ runs; `run_batch` is its async body, also called directly
by tests. The job carries ids only and re-reads everything from PostgreSQL, so a stale payload can
never send an outdated message, and every step leaves the database in a state from which another
job (or the tick's recovery) can carry on after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from core import outcomes, pile_up
from core.aio import finish_even_if_cancelled
from core.logs import bind
from core.outcomes import Decision, Kind, Policy
from core.phone import mask_phone
from core.schedule import (
    claim_horizon_ms,
    continuation_at,
    continuation_delay_ms,
    flood_jitter_ms,
    lease_allows_send,
    send_pause_s,
)
from db import accounts, batches, cycles, deliveries
from db import groups as db_groups
from db.deliveries import Target
from db.rows import Account, Cycle, Delivery, Media, Message
from jobs.locks import AccountLock
from jobs.notices import notify
from services import access, broadcast, rounds
from services.metrics import Metrics
from userbot.gateway import NOT_POSTED, GatewayError, OutgoingMedia, Peer, SenderConnection, Sent
from worker import queues
from worker.context import JobContext, loop_job

log = logging.getLogger(__name__)

STREAK_LIMIT = 3
# A delivery given up because its account is paused past the next round while others send.
ACCOUNT_PAUSED = "account_paused"
_LOCK_BUSY_MIN_DELAY_MS = 2000


@dataclass(slots=True)
class BatchResult:
    outcome: str  # inactive, lock_busy, deferred, no_account, continued, finished, waiting
    sent: int = 0
    attempted: int = 0
    continuation: str | None = None  # ready, next_due, flood
    job_id: str | None = None


@dataclass(slots=True)
class _BatchState:
    """One account's share of a batch."""

    account_id: int = 0
    sent: int = 0
    attempted: int = 0
    flood_until: datetime | None = None
    revoked: bool = False
    stopped: bool = False
    tells: set[str] = field(default_factory=set)
    decisions: list[Decision] = field(default_factory=list)  # for metrics, written once per batch
    live: bool | None = None  # the cycle's liveness as of the last recorded send, if known


def utcnow() -> datetime:
    return datetime.now(UTC)


@loop_job
async def send_batch(ctx: JobContext, cycle_id: int, attempt: int = 0) -> str:
    """RQ entry point: `send_batch(cycle_id, attempt)`, run on the process's job loop. Every line it
    logs carries the cycle id (and the job id the worker bound, worker/process.py)."""
    with bind(cycle_id=cycle_id):
        result = await run_batch(ctx, cycle_id, attempt)
        log.info("cycle %s attempt %s: %s (sent %s)", cycle_id, attempt, result.outcome, result.sent)
    return result.outcome


async def run_batch(ctx: JobContext, cycle_id: int, attempt: int = 0) -> BatchResult:
    """One batch. A PostgreSQL connection is held for single steps only, never across a send or a
    pause: hundreds of batches share a worker's few connections (worker/context.py, POOL_MAX).

    Each account of the owner sends its own groups' deliveries (docs/runtime.md, "Accounts"): under its
    own lock, flood pause and connection, all of them at once, each paced on its own."""
    async with ctx.pool.connection() as conn:
        seen = await batches.view(conn, cycle_id)
        cycle = seen.cycle
        if cycle is None or cycle.status != "running":
            return BatchResult("inactive")
        stale = await _stale(ctx, conn, seen, cycle)
    if stale is not None:
        if stale == "no_account":
            for gone in seen.accounts:
                await ctx.senders.discard(gone.id)
        return BatchResult(stale)
    held: dict[int, AccountLock] = {}
    try:
        for candidate in seen.accounts:
            if candidate.status != "active":
                continue
            lock = AccountLock(ctx.redis, queues.account_lock_key(ctx.settings, candidate.id),
                               ctx.settings.lock_ttl_s * 1000)
            if await lock.acquire():
                held[candidate.id] = lock
        if not held:
            async with ctx.pool.connection() as conn:
                return await _lock_busy(ctx, conn, cycle, attempt)
        async with ctx.pool.connection() as conn:
            # Read inside the locks: the previous holder may have just paused an account.
            current = await batches.accounts_of(conn, cycle.owner_id)
            if not any(a.status == "active" for a in current):
                await cycles.cancel_open(conn, cycle.owner_id)
                for gone in current:
                    await ctx.senders.discard(gone.id)
                return BatchResult("no_account")
            now = utcnow()
            usable = [a for a in current if a.id in held and a.status == "active"]
            ready = [a for a in usable if a.flood_until is None or a.flood_until <= now]
            if ready:
                await _give_up_long_paused(conn, cycle, usable)
            paused = [a.flood_until for a in usable if a.flood_until is not None and a.flood_until > now]
            if not ready and paused:
                at = min(paused) + timedelta(milliseconds=flood_jitter_ms(f"{cycle_id}:{attempt}"))
                job_id = await _enqueue(ctx, cycle_id, at)
                await cycles.set_continuation(conn, cycle_id, "flood")
                return BatchResult("deferred", continuation="flood", job_id=job_id)
        return await _run_locked(ctx, cycle, ready, held)
    finally:
        for lock in held.values():
            await lock.release()


async def _give_up_long_paused(conn: AsyncConnection, cycle: Cycle, usable: list[Account]) -> None:
    """While another account can send: the share of an account whose pause ends after the next round is
    due is cancelled (`account_paused`). Waiting for it would hold this round open, and with it every
    other account's next round (docs/runtime.md, "Accounts"). With one account, or all paused, the
    round waits for the pause, as it always did. Called under these accounts' locks."""
    # Paused now, and past the next round: a round running late (its next one already due) must not
    # take a pause that is over, or about to be, for a long one.
    next_due = max(cycle.scheduled_at + timedelta(minutes=cycle.interval_minutes), utcnow())
    for account in usable:
        if account.flood_until is not None and account.flood_until > next_due:
            given_up = await deliveries.cancel_account(conn, cycle.id, account.id, ACCOUNT_PAUSED)
            if given_up:
                log.info("cycle %s: account %s paused past the next round, %s deliveries given up", cycle.id,
                         account.id, given_up)


async def _stale(ctx: JobContext, conn: AsyncConnection, seen: batches.BatchView, cycle: Cycle) -> str | None:
    """docs/runtime.md, "Staleness" (and "Account state" for a missing session): a reason to send nothing,
    or None."""
    now = utcnow()
    user = seen.user
    if not access.is_allowed(user, now, is_admin=await access.super_admin(conn, ctx.settings, cycle.owner_id)):
        was_active, _ = await broadcast.stop(conn, cycle.owner_id)
        if was_active and user is not None and user.status == "active":
            await notify(conn, ctx.botapi, ctx.settings, cycle.owner_id, cause="expired",
                         ref=user.expires_at.isoformat() if user.expires_at else "", key="notices.expired")
        return "inactive"
    if seen.config is None or not seen.config.active:
        await cycles.cancel_open(conn, cycle.owner_id)
        return "inactive"
    if not any(a.status == "active" for a in seen.accounts):
        await cycles.cancel_open(conn, cycle.owner_id)
        return "no_account"
    return None


async def _lock_busy(ctx: JobContext, conn: AsyncConnection, cycle: Cycle, attempt: int) -> BatchResult:
    """Another job sends from these accounts right now. Retry a bounded number of times, then drop:
    the holder's own continuation carries the cycle on."""
    await cycles.count_lock_busy(conn, cycle.id)
    if attempt >= ctx.settings.lock_busy_retries:
        return BatchResult("lock_busy")
    delay = max(_LOCK_BUSY_MIN_DELAY_MS, continuation_delay_ms(
        ctx.settings.cont_delay_ms, ctx.settings.cont_jitter_ms, cycle.id, 1000 + attempt))
    job_id = await _enqueue(ctx, cycle.id, utcnow() + timedelta(milliseconds=delay), attempt + 1)
    return BatchResult("lock_busy", job_id=job_id)


async def _run_locked(ctx: JobContext, cycle: Cycle, ready: list[Account], locks: dict[int, AccountLock]
                      ) -> BatchResult:
    s = ctx.settings
    now = utcnow()
    async with ctx.pool.connection() as conn:
        # Claiming ahead (core/schedule.py claim_horizon_ms): the per-group spacing and the cycle jitter
        # shift deliveries by seconds; without the horizon each shifted one would cost a continuation job.
        horizon_ms = claim_horizon_ms(s.claim_ahead_ms, s.batch_size, s.send_pause_min_ms, s.lease_s)
        started = await batches.start(conn, cycle, now=now, due_by=now + timedelta(milliseconds=horizon_ms),
                                      lease_until=now + timedelta(seconds=s.lease_s), limit=s.batch_size,
                                      account_ids=[a.id for a in ready])
    if started.lag_ms is not None:
        log.info("cycle %s started, lag_ms=%s", cycle.id, started.lag_ms)
        await Metrics(ctx.redis, s.redis_prefix).observe("tgcast_cycle_start_lag_seconds", started.lag_ms / 1000)
    parts = [(a, _BatchState(account_id=a.id)) for a in ready]
    sending = [(a, state) for a, state in parts if a.id in started.claimed]
    if len(sending) == 1:
        account, state = sending[0]
        await _send_claimed(ctx, cycle, account, started, state, locks[account.id])
    elif sending:
        # Each account's share at once: a user's round with three accounts takes a third of the time.
        async with asyncio.TaskGroup() as group:
            for account, state in sending:
                group.create_task(_send_claimed(ctx, cycle, account, started, state, locks[account.id]))
    async with ctx.pool.connection() as conn:
        result = await _after_batch(ctx, conn, cycle, parts)
    for account, state in parts:
        if state.revoked:
            await ctx.senders.discard(account.id)
    return result


async def _send_claimed(
    ctx: JobContext, cycle: Cycle, account: Account, started: batches.Started, state: _BatchState,
    lock: AccountLock,
) -> None:
    claimed = started.claimed[account.id]
    open_ids = [d.id for d in claimed]
    # The delivery whose send request is out, and since when: cut off there (a job timeout, a stopping
    # worker's deadline), its post may have been made.
    in_request: tuple[int, datetime] | None = None
    try:
        if started.message is None:
            async with ctx.pool.connection() as conn:
                await deliveries.cancel(conn, open_ids, "no_message")
            open_ids.clear()
            return
        message, peers = started.message, started.targets
        session = ctx.box.decrypt(account.session_enc)
        try:
            # The account's connection from the worker's cache: connected once, reused by every batch.
            async with ctx.senders.sender(account.id, session) as sender:
                paused_until: datetime | None = None
                for delivery in claimed:
                    # Never before the delivery's own time (its group's spacing, a retry's backoff), and
                    # never sooner than the pacing pause after this account's previous send.
                    not_before = delivery.next_attempt_at
                    if paused_until is not None and paused_until > not_before:
                        not_before = paused_until
                    if not await _wait_until(ctx, not_before):
                        break  # the worker is stopping before that time: the rest goes back
                    # A stop takes effect between two sends: after a recorded send its statement
                    # already told whether the cycle is still live; otherwise ask.
                    live = state.live if state.live is not None else await _is_live(ctx, cycle.id)
                    state.live = None
                    if lock.lost or not live:
                        state.stopped = not lock.lost
                        break
                    if not lease_allows_send(utcnow(), delivery.lease_until, ctx.settings.request_timeout_s,
                                             ctx.settings.lease_s):
                        # The batch outlived its lease (a wait for the connection's claim, a slow
                        # request, a stalled loop): the rest goes back untouched rather than being
                        # sent after the tick may have given it to another job.
                        log.warning("cycle %s: lease running out, giving back %s deliveries", cycle.id,
                                    len(open_ids))
                        break
                    if not ctx.stop.allows_send():
                        # The worker is stopping (docs/worker.md, "Shutdown"): the same give-back, so
                        # the continuation carries the rest on elsewhere, within WORKER_SHUTDOWN_S.
                        log.info("cycle %s: worker stopping, giving back %s deliveries", cycle.id,
                                 len(open_ids))
                        break
                    target = peers.get(delivery.chat_id)
                    peer = Peer(delivery.chat_id, target.kind if target else "supergroup",  # type: ignore[arg-type]
                                target.access_hash if target else None, target.topic_id if target else None)
                    error: GatewayError | None = None
                    sent: Sent | None = None
                    skipped = False
                    # The earliest attempt that may have been posted, unless the history shows it was not.
                    unsure_before = delivery.unsure_since
                    send_at: datetime | None = None
                    state.attempted += 1
                    try:
                        earlier = await _earlier_post(ctx, sender, peer, message, delivery)
                        if earlier is not None and earlier != NOT_POSTED:
                            sent = Sent(message_id=earlier)  # it was posted: recorded, not sent again
                        else:
                            if earlier == NOT_POSTED:
                                unsure_before = None
                            skipped = await _pile_up_skips(sender, peer, target)
                            if not skipped:
                                send_at = utcnow()
                                in_request = (delivery.id, unsure_before or send_at)
                                sent = await _send_one(ctx, cycle, sender, peer, message, delivery)
                    except GatewayError as exc:
                        error = exc
                    except Exception as exc:  # a bug or an unmapped failure: keep the batch going
                        log.warning("send to %s failed: %s", delivery.chat_id, type(exc).__name__)
                        error = GatewayError("UNKNOWN", None, type(exc).__name__)
                    in_request = None
                    # This send may have been posted: stored with the row (None keeps what the row has).
                    unsure_since = (unsure_before or send_at) if error is not None and send_at is not None \
                        and outcomes.unsure(error.code) else None
                    # The pile-up check was a request to Telegram too: the pacing holds for it.
                    paused_until = utcnow() + timedelta(seconds=send_pause_s(
                        ctx.settings.send_pause_min_ms, ctx.settings.send_pause_max_ms))
                    if skipped:
                        open_ids.remove(delivery.id)
                        async with ctx.pool.connection() as conn:
                            await deliveries.mark_skipped(conn, delivery.id, pile_up.STILL_ON_TOP)
                        continue
                    decision = outcomes.classify(error, retry=delivery.retry, interval_s=cycle.interval_minutes * 60,
                                                 key=str(delivery.id), policy=Policy.of(ctx.settings))
                    if decision.status == "sent":
                        # Out of the open set before its record is awaited: a job timeout in the
                        # record's linger must not give back a row whose post was made (it would be
                        # posted again); the record is written all the same (worker/sent_records.py).
                        open_ids.remove(delivery.id)
                    await _apply(ctx, cycle, delivery, decision, sent, error, state, unsure_since)
                    if delivery.id in open_ids:
                        open_ids.remove(delivery.id)
                    if decision.stop_batch:
                        break
        except GatewayError as exc:  # connecting failed: judge it as if the first send had failed
            decision = outcomes.classify(exc, retry=0, interval_s=cycle.interval_minutes * 60,
                                         key=f"connect:{cycle.id}", policy=Policy.of(ctx.settings))
            if decision.kind is Kind.REVOKED:
                state.revoked = True
            elif decision.account_pause_s:
                async with ctx.pool.connection() as conn:
                    await _pause_account(conn, cycle, decision, state)
            log.warning("cycle %s: connecting failed: %s", cycle.id, exc.code)
    finally:
        # Whatever was claimed and not judged goes back untouched (a flood pushes it past the pause).
        # Shielded: a batch cancelled (its job timeout, a stopping worker's deadline) still hands its
        # rows back at once, and ends only once they are back: the stopping worker closes the pool next.
        cut_off = in_request if in_request is not None and in_request[0] in open_ids else None
        await finish_even_if_cancelled(_give_back(ctx, cycle, open_ids, state, cut_off))
        await _record(ctx, state.decisions)


async def _pile_up_skips(sender: SenderConnection, peer: Peer, target: Target | None) -> bool:
    """The broadcast's no-pile-up rule, before a post (core/pile_up.py): True when the group is skipped
    this round because the previous post is still its last message; with `replace`, the previous post
    is deleted first. At most one request; a refusal to delete is no reason not to post."""
    if target is None:
        return False
    previous = target.last_message_id
    step = pile_up.step_before_post(target.pile_up, previous)
    if step is pile_up.Step.CHECK_LAST and previous is not None:
        return pile_up.still_on_top(previous, await sender.last_message_id(peer))
    if step is pile_up.Step.DELETE_PREVIOUS and previous is not None:
        try:
            await sender.delete_message(peer, previous)
        except GatewayError as exc:
            if exc.code not in pile_up.DELETE_REFUSALS:
                raise
            log.info("group %s: the previous post was not deleted (%s); posting", peer.chat_id, exc.code)
    return False


async def _give_back(ctx: JobContext, cycle: Cycle, open_ids: list[int], state: _BatchState,
                     cut_off: tuple[int, datetime] | None) -> None:
    async with ctx.pool.connection() as conn:
        if cut_off is not None:
            await deliveries.mark_unsure(conn, *cut_off)
        await deliveries.release(conn, open_ids, not_before=state.flood_until)
        if state.stopped:
            await cycles.cancel_open(conn, cycle.owner_id)


async def _earlier_post(
    ctx: JobContext, sender: SenderConnection, peer: Peer, message: Message, delivery: Delivery,
) -> int | None:
    """Before sending a delivery an earlier attempt of which may have been posted (docs/runtime.md,
    "Sends whose outcome is unknown"): within RANDOM_ID_TRUST_S, None (send: Telegram de-duplicates by
    the random_id); past it, what the group's history shows — the earlier post's id, or NOT_POSTED.
    When the history cannot tell, OUTCOME_UNKNOWN: given up rather than risk posting twice."""
    if not outcomes.needs_history_check(delivery.unsure_since, utcnow(), ctx.settings.random_id_trust_s):
        return None
    assert delivery.unsure_since is not None
    found = await sender.find_own_post(peer, delivery.unsure_since, message.text)
    log.info("group %s: an unanswered earlier send %s", peer.chat_id,
             "was not posted" if found == NOT_POSTED else "cannot be told" if found is None else "was posted")
    if found is None:
        raise GatewayError("OUTCOME_UNKNOWN", detail="the group's history cannot tell whether it was posted")
    return found


async def _is_live(ctx: JobContext, cycle_id: int) -> bool:
    async with ctx.pool.connection() as conn:
        return await cycles.is_live(conn, cycle_id)


async def _send_one(
    ctx: JobContext, cycle: Cycle, sender: SenderConnection, peer: Peer,
    message: Message, delivery: Delivery,
) -> Sent:
    if message.kind == "text" or message.media_id is None:
        return await sender.send_text(peer, message.text, message.entities, delivery.random_id)
    media_id = message.media_id
    media: Media | None = None  # its bytes, read once an upload is due

    async def set_handle(handle: str | None) -> None:
        async with ctx.pool.connection() as conn:
            await cycles.set_media_handle(conn, cycle.id, handle)
        cycle.media_handle = handle

    async def forget_handle() -> None:
        await set_handle(None)

    async def send_media() -> Sent:
        nonlocal media
        if cycle.media_handle is None:
            # Uploaded once per cycle (again only when the server lost it); the bytes are read here,
            # only when an upload is due.
            if media is None:
                async with ctx.pool.connection() as conn:
                    media = await deliveries.cycle_media(conn, media_id)
            if media is None:
                raise GatewayError("MEDIA_FILE_MISSING", detail=f"media {media_id}")
            handle = await sender.upload_media(OutgoingMedia(
                media.kind, bytes(media.data), media.file_name, media.mime_type))  # type: ignore[arg-type]
            await set_handle(handle)
        sent = await sender.send_media(peer, cycle.media_handle, message.kind,  # type: ignore[arg-type]
                                       message.text, message.entities, delivery.random_id)
        if sent.media_handle is not None and sent.media_handle != cycle.media_handle:
            # An upload is kept for a while and may serve one message only; the photo/document that
            # message stored lasts, so every later send of the cycle (any job) references it.
            await set_handle(sent.media_handle)
        return sent

    try:
        return await send_media()
    except GatewayError as exc:
        if outcomes.rule_for(exc.code).kind is not Kind.MEDIA_EXPIRED:
            raise
        # The upload or the stored file's reference is gone: upload again and resend once, counting
        # no retry. A second such failure in a row takes the normal retry path, the next attempt
        # starting from a fresh upload.
        log.info("cycle %s: media handle gone (%s), uploading again", cycle.id, exc.code)
        await forget_handle()
        try:
            return await send_media()
        except GatewayError as again:
            if outcomes.rule_for(again.code).kind is Kind.MEDIA_EXPIRED:
                await forget_handle()
            raise


async def _wait_until(ctx: JobContext, at: datetime) -> bool:
    """Sleep until `at`. False, as soon as it is known, when the worker is stopping and will start no
    send by then (a warm shutdown that begins during the sleep wakes it)."""
    stop = ctx.stop
    while True:
        delay = (at - utcnow()).total_seconds()
        left = stop.seconds_left()
        if left is not None and left <= max(delay, 0.0):
            return False
        if delay <= 0:
            return True
        if left is not None:  # the stop is known and comes later: nothing else can wake us
            await asyncio.sleep(delay)
            continue
        # `asyncio.timeout`, not `wait_for`: Python 3.11's wait_for can swallow the batch's own cancel
        # (its job timeout, a stopping worker's deadline) when the stop is set at the same moment.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.changed.wait()


async def _apply(
    ctx: JobContext, cycle: Cycle, delivery: Delivery, decision: Decision,
    sent: Sent | None, error: GatewayError | None, state: _BatchState, unsure_since: datetime | None = None,
) -> None:
    now = utcnow()
    if decision.status == "sent":
        # Not on a pooled connection of this batch: the record waits to be written with other
        # batches' (worker/sent_records.py), and holding a connection meanwhile would starve the pool.
        recorded, state.live = await ctx.sent_records.record(
            delivery.id, cycle.id, sent.message_id if sent else 0, now)
        if recorded:
            state.sent += 1
        if decision.account_pause_s:
            async with ctx.pool.connection() as conn:
                await _pause_account(conn, cycle, decision, state)
    else:
        async with ctx.pool.connection() as conn:
            if decision.status == "failed":
                until = now + timedelta(seconds=decision.wait_s) if decision.wait_s else None
                await deliveries.mark_failed(conn, delivery.id, reason=decision.reason or outcomes.UNKNOWN,
                                             error=decision.error, retry=decision.retry, wait_until=until)
                if decision.reason == outcomes.UNKNOWN and error is not None:
                    log.warning("cycle %s: unknown send failure %s", cycle.id, error.code)
            elif decision.status == "pending":
                await deliveries.mark_pending(
                    conn, delivery.id, retry=decision.retry,
                    next_attempt_at=now + timedelta(milliseconds=decision.retry_delay_ms or 0),
                    unsure_since=unsure_since)
            else:
                # The session is gone: put it back so the stop below cancels it with the rest of the cycle.
                await deliveries.release(conn, [delivery.id])
                state.revoked = True
            if decision.account_pause_s:
                await _pause_account(conn, cycle, decision, state)
    state.decisions.append(decision)
    if decision.tell:
        state.tells.add(decision.tell)


async def _record(ctx: JobContext, decisions: list[Decision]) -> None:
    """One Redis round trip per batch rather than per delivery (it showed in the pipeline profile)."""
    if not decisions:
        return
    # Summed per series first: a batch's twenty "sent" are one increment of 20, not twenty of 1.
    outcomes_seen: Counter[tuple[str, str]] = Counter()
    floods: list[float] = []
    for decision in decisions:
        outcome = "retry" if decision.status == "pending" else decision.status
        outcomes_seen[outcome, decision.reason or ("" if decision.status == "sent" else decision.kind.value)] += 1
        if decision.kind is Kind.FLOOD and decision.account_pause_s:
            floods.append(decision.account_pause_s)
    async with Metrics(ctx.redis, ctx.settings.redis_prefix).pipeline() as m:
        for (seen, reason), count in outcomes_seen.items():
            m.inc("tgcast_deliveries_total", count, outcome=seen, reason=reason)
        if floods:
            m.inc("tgcast_flood_waits_total", len(floods))
            m.inc("tgcast_flood_wait_seconds_total", sum(floods))


async def _pause_account(conn: AsyncConnection, cycle: Cycle, decision: Decision, state: _BatchState) -> None:
    assert decision.account_pause_s is not None
    until = utcnow() + timedelta(seconds=decision.account_pause_s)
    reason = "flood" if decision.kind is Kind.FLOOD else "peer_flood"
    await accounts.pause(conn, state.account_id, until, reason)
    state.flood_until = max(state.flood_until or until, until)


async def _after_batch(
    ctx: JobContext, conn: AsyncConnection, cycle: Cycle, parts: list[tuple[Account, _BatchState]]
) -> BatchResult:
    sent = sum(state.sent for _, state in parts)
    attempted = sum(state.attempted for _, state in parts)
    for account, state in parts:
        if state.revoked:
            await _session_ended(ctx, conn, cycle, account)
    if any(state.revoked for _, state in parts) and await accounts.get_active(conn, cycle.owner_id) is None:
        return BatchResult("no_account", sent=sent, attempted=attempted)
    for _, state in parts:
        await _tell(ctx, conn, cycle, state)
    if any(state.stopped for _, state in parts):
        return BatchResult("inactive", sent=sent, attempted=attempted)
    left = await deliveries.remaining(conn, cycle.id)
    if left.pending == 0 and left.in_flight == 0:
        await finish_cycle(ctx, conn, cycle.id)
        return BatchResult("finished", sent=sent, attempted=attempted)
    if left.pending == 0:
        # Only other jobs' in-flight rows are left: their job finishes the cycle, or their lease
        # expires and the tick's recovery hands them to a new job.
        return BatchResult("waiting", sent=sent, attempted=attempted)
    now = utcnow()
    step = await _step(ctx, cycle.id)
    delay = continuation_delay_ms(ctx.settings.cont_delay_ms, ctx.settings.cont_jitter_ms, cycle.id, step)
    # The earliest due time already counts each account's pause; a pause met in this batch that holds
    # everything left gets its jitter on top.
    earliest = left.earliest_due
    floods = [state.flood_until for _, state in parts if state.flood_until is not None]
    flood = bool(floods) and earliest is not None and earliest >= min(floods)
    if flood:
        resume = min(floods) + timedelta(milliseconds=flood_jitter_ms(f"{cycle.id}:{step}"))
        earliest = max(earliest, resume) if earliest else resume
    at = continuation_at(now, delay, earliest)
    if flood:
        reason = "flood"
    elif earliest is not None and earliest > now + timedelta(milliseconds=delay):
        reason = "next_due"
    else:
        reason = "ready"
    job_id = await _enqueue(ctx, cycle.id, at)
    await cycles.set_continuation(conn, cycle.id, reason)
    return BatchResult("continued", sent=sent, attempted=attempted, continuation=reason, job_id=job_id)


async def _session_ended(ctx: JobContext, conn: AsyncConnection, cycle: Cycle, account: Account) -> None:
    """The session this batch used stopped working. Only that login is revoked; the owner is told once
    per login. With no other active account the broadcast stops, as it always did; otherwise only this
    account's groups sit out (its deliveries are cancelled) and the user is told which account it was."""
    if not await accounts.revoke(conn, account.id, account.login_id):
        return
    if await accounts.get_active(conn, cycle.owner_id) is None:
        await broadcast.stop(conn, cycle.owner_id)
        # Once per login, not per Telegram account: logging in again and losing that session too
        # is told again. With the Log in button of the menu (`login`, handlers/callbacks.py `Login`).
        await notify(conn, ctx.botapi, ctx.settings, cycle.owner_id, cause="session_ended",
                     ref=f"login:{account.login_id}", key="notices.session_ended",
                     button=("menu.btn_login", "login"))
        return
    await deliveries.cancel_account(conn, cycle.id, account.id, "session_ended")
    by_account = await db_groups.selected_by_account(conn, cycle.owner_id)
    # With the accounts screen's button (`accounts`, handlers/callbacks.py `Accounts`): log in again there.
    await notify(conn, ctx.botapi, ctx.settings, cycle.owner_id, cause="session_ended",
                 ref=f"login:{account.login_id}", key="notices.account_ended",
                 phone=html.escape(mask_phone(account.phone)), count=by_account.get(account.id, 0),
                 button=("menu.btn_accounts", "accounts"))


async def _step(ctx: JobContext, cycle_id: int) -> int:
    # Deleted with the cycle's other keys when it finishes (queues.forget_cycle); the expiry only
    # catches a cycle that never finishes here (cancelled).
    key = queues.cont_step_key(ctx.settings, cycle_id)
    value = await ctx.redis.incr(key)
    await ctx.redis.expire(key, 8 * 24 * 3600)
    return int(value)


async def _tell(ctx: JobContext, conn: AsyncConnection, cycle: Cycle, state: _BatchState) -> None:
    # A pause is told as the time it ends, as Telegram gave it: a wait of 90 s rounded to "2 min" was
    # not what Telegram said.
    now = utcnow()
    until = rounds.clock(state.flood_until or now, now)
    for tell in sorted(state.tells):
        key = {"bad_content": "notices.bad_content", "long_flood": "notices.long_flood",
               "account_paused": "notices.account_paused"}.get(tell)
        if key is not None:
            await notify(conn, ctx.botapi, ctx.settings, cycle.owner_id, cause=tell, ref=str(cycle.id), key=key,
                         time=until)


async def finish_cycle(ctx: JobContext, conn: AsyncConnection, cycle_id: int) -> Cycle | None:
    """Close a cycle nothing is left in, then run the group failure streaks (once: only the caller
    that finished it gets the row)."""
    finished = await cycles.finish(conn, cycle_id, utcnow())
    if finished is None:
        return None
    log.info("cycle %s finished: %s (sent %s, failed %s)", cycle_id, finished.outcome, finished.sent,
             finished.failed)
    removed = await cycles.apply_streaks(conn, cycle_id, sorted(outcomes.STREAK_REASONS), STREAK_LIMIT)
    if removed:
        await cycles.mark_removed(conn, cycle_id, [group.chat_id for group in removed])
    for group in removed:
        await notify(conn, ctx.botapi, ctx.settings, finished.owner_id, cause="group_removed",
                     ref=f"{group.chat_id}:{cycle_id}", key="notices.group_removed",
                     title=html.escape(group.title),
                     keyed={"reason": f"notices.reason_{group.reason or outcomes.UNREACHABLE}"})
    await asyncio.to_thread(queues.forget_cycle, ctx.settings, ctx.queue_redis, cycle_id)
    return finished


async def _enqueue(ctx: JobContext, cycle_id: int, at: datetime, attempt: int = 0) -> str | None:
    """On this worker's own queue (worker/own_queues.py): the account's connection is open here, so its next
    batch runs here without a connect. Should this worker die first, the queue is handed to the shared
    one."""
    return await asyncio.to_thread(queues.enqueue_send, ctx.settings, ctx.queue_redis, cycle_id, at,
                                   attempt=attempt, queue_name=ctx.home_queue)
