"""core.outcomes: every row of the outcome table (docs/runtime.md, "Outcomes"), with errors shaped as
Telethon raises them (built with `telethon.errors` classes or `rpc_message_to_error`, then named by
`to_gateway_error`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from telethon import errors
from telethon.tl.types import RpcError

from core import outcomes
from core.outcomes import Kind, Policy, classify
from userbot.errors import to_gateway_error
from userbot.gateway import NOT_POSTED, GatewayError, own_post_in

POLICY = Policy(max_retries=3, retry_base_ms=2000, retry_max_ms=120000, slowmode_default_s=300, account_pause_s=3600)
INTERVAL_S = 600


def rpc(code: int, message: str) -> BaseException:
    return errors.rpc_message_to_error(RpcError(error_code=code, error_message=message), request=None)


def decide(exc: BaseException | None, *, retry: int = 0, interval_s: int = INTERVAL_S) -> outcomes.Decision:
    err = None if exc is None else to_gateway_error(exc)
    return classify(err, retry=retry, interval_s=interval_s, key="d1", policy=POLICY)


def counts_toward_streak(d: outcomes.Decision) -> bool:
    """What the send job's streak step counts (it passes STREAK_REASONS to the failed deliveries' query)."""
    return d.status == "failed" and d.reason in outcomes.STREAK_REASONS


def test_ok_is_sent() -> None:
    d = decide(None, retry=2)
    assert (d.kind, d.status, d.retry, d.stop_batch) == (Kind.SENT, "sent", 2, False)


@pytest.mark.parametrize("exc", [errors.RandomIdDuplicateError(request=None), rpc(500, "RANDOM_ID_DUPLICATE")])
def test_random_id_duplicate_counts_as_sent(exc: BaseException) -> None:
    assert decide(exc).status == "sent"


@pytest.mark.parametrize(
    "exc",
    [errors.FloodWaitError(request=None, capture=42), rpc(420, "FLOOD_WAIT_42"), rpc(420, "FLOOD_PREMIUM_WAIT_42"),
     rpc(420, "FLOOD_SOMETHING_NEW_42")],
)
def test_flood_wait_pauses_the_account_and_keeps_the_retry_count(exc: BaseException) -> None:
    d = decide(exc, retry=1)
    assert d.kind is Kind.FLOOD and d.status == "pending"
    assert d.account_pause_s == 42 and d.stop_batch
    assert d.retry == 1
    assert 42_000 <= (d.retry_delay_ms or 0) <= 43_000
    assert d.tell is None


def test_flood_longer_than_the_interval_tells_the_user() -> None:
    d = decide(rpc(420, "FLOOD_WAIT_900"), interval_s=600)
    assert d.tell == "long_flood" and d.account_pause_s == 900


@pytest.mark.parametrize("exc", [errors.SlowModeWaitError(request=None, capture=30), rpc(420, "SLOWMODE_WAIT_30")])
def test_slowmode_waits_for_that_group(exc: BaseException) -> None:
    d = decide(exc, retry=1)
    assert (d.status, d.retry_delay_ms, d.retry, d.account_pause_s, d.stop_batch) == ("pending", 30_000, 1, None, False)


def test_bare_slowmode_uses_the_default() -> None:
    d = classify(GatewayError("SLOWMODE_WAIT_X", None), retry=0, interval_s=INTERVAL_S, key="k", policy=POLICY)
    assert (d.status, d.retry_delay_ms) == ("pending", 300_000)
    d0 = classify(GatewayError("SLOWMODE_WAIT_X", 0), retry=0, interval_s=INTERVAL_S, key="k", policy=POLICY)
    assert d0.retry_delay_ms == 300_000


def test_slowmode_longer_than_the_interval_fails_this_cycle() -> None:
    d = decide(rpc(420, "SLOWMODE_WAIT_3600"), interval_s=600)
    assert (d.status, d.reason) == ("failed", "slowmode")
    assert not counts_toward_streak(d)


@pytest.mark.parametrize(
    "exc",
    [TimeoutError(), asyncio.IncompleteReadError(b"", 8), ConnectionResetError(), OSError("net down"),
     errors.RpcCallFailError(request=None), rpc(500, "SOME_NEW_500"), rpc(-500, "No workers running"),
     rpc(-503, "Timeout")],
)
def test_transient_errors_back_off_and_count_a_retry(exc: BaseException) -> None:
    for retry, core in [(0, 2000), (1, 4000), (2, 8000)]:
        d = decide(exc, retry=retry)
        assert (d.kind, d.status, d.retry) == (Kind.TRANSIENT, "pending", retry + 1)
        assert core <= (d.retry_delay_ms or 0) <= core * 1.2


def test_transient_after_max_retries_is_retry_exhausted() -> None:
    d = decide(rpc(-503, "Timeout"), retry=3)
    assert (d.status, d.reason) == ("failed", "retry_exhausted")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (errors.ChatWriteForbiddenError(request=None), "forbidden"),
        (rpc(403, "CHAT_SEND_PLAIN_FORBIDDEN"), "forbidden"),
        (rpc(403, "CHAT_SEND_MEDIA_FORBIDDEN"), "forbidden"),
        (rpc(400, "CHAT_RESTRICTED"), "forbidden"),
        (rpc(400, "USER_BANNED_IN_CHANNEL"), "forbidden"),
        (errors.ChannelPrivateError(request=None), "unreachable"),
        (rpc(400, "CHANNEL_INVALID"), "unreachable"),
        (rpc(400, "CHAT_ID_INVALID"), "unreachable"),
        (rpc(400, "PEER_ID_INVALID"), "unreachable"),
        (rpc(400, "CHAT_ADMIN_REQUIRED"), "unreachable"),
        (rpc(400, "TOPIC_CLOSED"), "topic_closed"),
        (rpc(400, "TOPIC_DELETED"), "topic_closed"),
    ],
)
def test_terminal_group_failures_count_toward_the_streak(exc: BaseException, reason: str) -> None:
    d = decide(exc)
    assert (d.status, d.reason, counts_toward_streak(d), d.stop_batch) == ("failed", reason, True, False)


@pytest.mark.parametrize(
    "exc",
    [errors.MessageTooLongError(request=None), rpc(400, "MEDIA_CAPTION_TOO_LONG"), rpc(400, "ENTITY_BOUNDS_INVALID"),
     rpc(400, "MESSAGE_EMPTY")],
)
def test_bad_content_fails_and_tells_the_user(exc: BaseException) -> None:
    d = decide(exc)
    assert (d.status, d.reason, d.tell, counts_toward_streak(d)) == ("failed", "bad_content", "bad_content", False)


@pytest.mark.parametrize(
    "exc",
    [errors.AuthKeyUnregisteredError(request=None), errors.SessionRevokedError(request=None),
     errors.UserDeactivatedError(request=None), errors.UserDeactivatedBanError(request=None),
     errors.AuthKeyDuplicatedError(request=None), rpc(401, "SOME_NEW_401"), rpc(401, "AUTH_KEY_UNREGISTERED")],
)
def test_dead_session_cancels_and_tells_the_user(exc: BaseException) -> None:
    d = decide(exc)
    assert (d.kind, d.status, d.stop_batch, d.tell) == (Kind.REVOKED, "cancelled", True, "session_ended")


@pytest.mark.parametrize("exc", [errors.PeerFloodError(request=None), rpc(400, "PEER_FLOOD"),
                                 rpc(420, "FROZEN_METHOD_INVALID")])
def test_spam_limits_pause_the_account(exc: BaseException) -> None:
    d = decide(exc, retry=2)
    assert (d.kind, d.status, d.retry, d.stop_batch, d.account_pause_s, d.tell) == (
        Kind.ACCOUNT_PAUSE, "pending", 2, True, 3600, "account_paused")
    assert (d.retry_delay_ms or 0) >= 3_600_000


@pytest.mark.parametrize(
    "exc",
    [rpc(406, "SOME_NEW_THING"),  # Telethon's AuthKeyError base class: NOT a dead session
     rpc(400, "BRAND_NEW_THING_5"), rpc(403, "SOMETHING_FORBIDDEN_NEW"), ValueError("weird")],
)
def test_anything_else_is_unknown_with_the_error_kept(exc: BaseException) -> None:
    d = decide(exc)
    assert (d.status, d.reason) == ("failed", "unknown")
    assert d.error and len(d.error) <= 200


def test_unknown_error_text_is_truncated() -> None:
    d = classify(GatewayError("X_Y", None, "z" * 1000), retry=0, interval_s=60, key="k", policy=POLICY)
    assert d.error is not None and len(d.error) == 200


def test_policy_reads_settings(settings) -> None:
    p = Policy.of(settings)
    assert (p.max_retries, p.slowmode_default_s, p.account_pause_s) == (
        settings.max_retries, settings.slowmode_default_s, settings.account_pause_s)


def test_every_table_row_is_reachable_by_name() -> None:
    for code, rule in outcomes.TABLE.items():
        assert outcomes.rule_for(code) is rule


@pytest.mark.parametrize(
    "exc",
    [errors.FilePartMissingError(request=None, capture=0), rpc(400, "FILE_PART_3_MISSING"),
     errors.FilePartsInvalidError(request=None), errors.FileReferenceExpiredError(request=None),
     errors.FileReferenceInvalidError(request=None), rpc(400, "FILE_REFERENCE_0_EXPIRED"),
     rpc(400, "FILE_REFERENCE_2_INVALID"), errors.MediaEmptyError(request=None), rpc(400, "FILE_PARTS_MISSING"),
     GatewayError("MEDIA_HANDLE_INVALID")],
)
def test_missing_or_expired_media_is_retried_like_a_transient_failure(exc: BaseException) -> None:
    # The worker re-uploads and resends once before a delivery is judged; reaching the classifier
    # means that did not help, so the normal retry path applies (with a retry counted).
    for retry, core in [(0, 2000), (2, 8000)]:
        d = decide(exc, retry=retry)
        assert (d.kind, d.status, d.retry, d.stop_batch, d.account_pause_s) == (
            Kind.MEDIA_EXPIRED, "pending", retry + 1, False, None)
        assert core <= (d.retry_delay_ms or 0) <= core * 1.2
    exhausted = decide(exc, retry=3)
    assert (exhausted.kind, exhausted.status, exhausted.reason) == (Kind.MEDIA_EXPIRED, "failed", "retry_exhausted")
    assert exhausted.error


@pytest.mark.parametrize("code", ["FILE_PART_X_MISSING", "FILE_PART_12_MISSING", "FILE_REFERENCE_X_EXPIRED",
                                  "FILE_REFERENCE_EXPIRED", "MEDIA_EMPTY"])
def test_media_expired_names_with_or_without_their_number(code: str) -> None:
    assert outcomes.rule_for(code).kind is Kind.MEDIA_EXPIRED


def test_an_inner_number_does_not_make_unknown_names_known() -> None:
    assert outcomes.rule_for("SOMETHING_3_ODD").reason == "unknown"
    assert outcomes.rule_for("MEDIA_INVALID").reason == "unknown"  # a bad file, not a lost one


_SINCE = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("unsure_since", "age_s", "trust_s", "check"),
    [(None, 0, 60, False), (_SINCE, 60, 60, False), (_SINCE, 61, 60, True), (_SINCE, 1, 0, True),
     (_SINCE, 0, 0, False)],
)
def test_the_history_is_read_only_past_the_random_id_trust(
    unsure_since: datetime | None, age_s: int, trust_s: int, check: bool
) -> None:
    assert outcomes.needs_history_check(unsure_since, _SINCE + timedelta(seconds=age_s), trust_s) is check


@pytest.mark.parametrize(
    ("messages", "whole", "found"),
    [
        ([(5, True, _SINCE, "hi")], False, 5),
        ([(5, True, _SINCE - timedelta(seconds=1), "hi")], False, 5),  # dates are whole seconds
        ([(5, True, _SINCE - timedelta(seconds=2), "hi")], False, NOT_POSTED),
        ([(6, False, _SINCE, "hi"), (5, True, _SINCE - timedelta(seconds=2), "hi")], False, NOT_POSTED),
        ([(6, True, _SINCE, "other")], False, None),
        ([(6, True, _SINCE, "other")], True, NOT_POSTED),
        ([(6, True, _SINCE, "  hi\n")], False, 6),
        ([], True, NOT_POSTED),
        ([], False, None),
    ],
)
def test_own_post_in_one_page_of_history(
    messages: list[tuple[int, bool, datetime, str]], whole: bool, found: int | None
) -> None:
    assert own_post_in(messages, _SINCE, "hi", whole_history=whole) == found


def test_unsure_codes_are_transient_so_they_are_retried() -> None:
    assert all(outcomes.rule_for(code).kind is Kind.TRANSIENT for code in outcomes.UNSURE_CODES)
    assert not outcomes.unsure("FLOOD_WAIT_X") and outcomes.unsure("TIMEOUT")
    assert outcomes.rule_for("OUTCOME_UNKNOWN") == outcomes.Rule(Kind.FAILED, outcomes.OUTCOME_UNKNOWN)
