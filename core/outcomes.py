"""What a send's result means for the delivery, the account and the user (docs/runtime.md, "Outcomes").

One table maps Telegram's error name (`GatewayError.code`, as `userbot.errors.to_gateway_error`
names it) to a rule; `classify` turns a rule plus the numbers (wait seconds, retry count, interval)
into a `Decision` the worker applies as is. No I/O here, so every row is tested cheaply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from core.schedule import backoff_ms, flood_jitter_ms

_ERROR_TEXT_MAX = 200


class SendFailure(Protocol):
    """What the classifier reads of a failed send: the shape of `userbot.gateway.GatewayError` (a
    protocol, so that these rules depend on no gateway code)."""

    @property
    def code(self) -> str: ...

    @property
    def seconds(self) -> int | None: ...

    @property
    def detail(self) -> str: ...


class Kind(StrEnum):
    SENT = "sent"
    FLOOD = "flood"  # account-wide wait asked by Telegram
    SLOWMODE = "slowmode"  # this group's own wait
    TRANSIENT = "transient"  # network / server trouble: retried with backoff
    FAILED = "failed"  # terminal for this cycle
    REVOKED = "revoked"  # the session is unusable
    ACCOUNT_PAUSE = "account_pause"  # spam limits on the account: pause it for a long while
    # The uploaded file or the stored media's reference is gone (servers keep uploads only for a
    # while). The worker uploads again and resends once on its own; reaching the classifier means
    # that did not help, so it is retried like a transient failure (with a fresh upload).
    MEDIA_EXPIRED = "media_expired"


# Failure reasons stored on deliveries (and counted in cycles.reasons).
FORBIDDEN = "forbidden"
UNREACHABLE = "unreachable"
TOPIC_CLOSED = "topic_closed"
BAD_CONTENT = "bad_content"
SLOWMODE = "slowmode"
RETRY_EXHAUSTED = "retry_exhausted"
UNKNOWN = "unknown"
# A send whose answer never came (a timeout, a dropped connection, a killed worker) may have been
# posted; past the time Telegram is trusted to remember its random_id, and with the group's history
# unable to tell (docs/runtime.md, "Sends whose outcome is unknown"), it is not sent again.
OUTCOME_UNKNOWN = "outcome_unknown"

# Failures after which the message may or may not have been posted: the request left, no answer came
# (Telegram names its own internal failures as possibly executed).
UNSURE_CODES = frozenset({"TIMEOUT", "NETWORK", "RPC_CALL_FAIL", "RPC_MCGET_FAIL", "INTERNAL"})


def unsure(code: str) -> bool:
    return code in UNSURE_CODES


def needs_history_check(unsure_since: datetime | None, now: datetime, random_id_trust_s: float) -> bool:
    """Before sending a delivery again: True when an earlier attempt may have been posted and Telegram
    may have forgotten its random_id since, so the group's history must tell whether it was. Within the
    trust the resend is safe: Telegram answers it with the earlier message instead of posting again."""
    return unsure_since is not None and (now - unsure_since).total_seconds() > random_id_trust_s

# A group failing for one of these reasons in consecutive cycles is eventually taken off the list.
STREAK_REASONS = frozenset({FORBIDDEN, UNREACHABLE, TOPIC_CLOSED})

Tell = Literal["bad_content", "session_ended", "account_paused", "long_flood"]


@dataclass(frozen=True, slots=True)
class Rule:
    kind: Kind
    reason: str | None = None


_FAIL_FORBIDDEN = Rule(Kind.FAILED, FORBIDDEN)
_FAIL_UNREACHABLE = Rule(Kind.FAILED, UNREACHABLE)
_FAIL_TOPIC = Rule(Kind.FAILED, TOPIC_CLOSED)
_FAIL_CONTENT = Rule(Kind.FAILED, BAD_CONTENT)
_MEDIA_EXPIRED = Rule(Kind.MEDIA_EXPIRED)

TABLE: dict[str, Rule] = {
    "RANDOM_ID_DUPLICATE": Rule(Kind.SENT),
    "FLOOD_WAIT_X": Rule(Kind.FLOOD),
    "FLOOD_PREMIUM_WAIT_X": Rule(Kind.FLOOD),
    "SLOWMODE_WAIT_X": Rule(Kind.SLOWMODE),
    "SLOWMODE_WAIT": Rule(Kind.SLOWMODE),  # bare slow mode, no number
    "TIMEOUT": Rule(Kind.TRANSIENT),
    "NETWORK": Rule(Kind.TRANSIENT),
    "RPC_CALL_FAIL": Rule(Kind.TRANSIENT),
    "RPC_MCGET_FAIL": Rule(Kind.TRANSIENT),
    "INTERNAL": Rule(Kind.TRANSIENT),
    "WORKER_BUSY_TOO_LONG_RETRY": Rule(Kind.TRANSIENT),
    "CHAT_WRITE_FORBIDDEN": _FAIL_FORBIDDEN,
    "CHAT_SEND_PLAIN_FORBIDDEN": _FAIL_FORBIDDEN,
    "CHAT_SEND_MEDIA_FORBIDDEN": _FAIL_FORBIDDEN,
    "CHAT_SEND_PHOTOS_FORBIDDEN": _FAIL_FORBIDDEN,
    "CHAT_SEND_VIDEOS_FORBIDDEN": _FAIL_FORBIDDEN,
    "CHAT_RESTRICTED": _FAIL_FORBIDDEN,
    "USER_BANNED_IN_CHANNEL": _FAIL_FORBIDDEN,
    "CHANNEL_PRIVATE": _FAIL_UNREACHABLE,
    "CHANNEL_INVALID": _FAIL_UNREACHABLE,
    "CHAT_ID_INVALID": _FAIL_UNREACHABLE,
    "PEER_ID_INVALID": _FAIL_UNREACHABLE,
    "CHAT_ADMIN_REQUIRED": _FAIL_UNREACHABLE,
    "TOPIC_CLOSED": _FAIL_TOPIC,
    "TOPIC_DELETED": _FAIL_TOPIC,
    "MESSAGE_TOO_LONG": _FAIL_CONTENT,
    "MEDIA_CAPTION_TOO_LONG": _FAIL_CONTENT,
    "ENTITY_BOUNDS_INVALID": _FAIL_CONTENT,
    "MESSAGE_EMPTY": _FAIL_CONTENT,
    "AUTH_KEY_UNREGISTERED": Rule(Kind.REVOKED),
    "SESSION_REVOKED": Rule(Kind.REVOKED),
    "USER_DEACTIVATED": Rule(Kind.REVOKED),
    "USER_DEACTIVATED_BAN": Rule(Kind.REVOKED),
    "AUTH_KEY_DUPLICATED": Rule(Kind.REVOKED),
    "PEER_FLOOD": Rule(Kind.ACCOUNT_PAUSE),
    "FROZEN_METHOD_INVALID": Rule(Kind.ACCOUNT_PAUSE),
    "FILE_PART_X_MISSING": _MEDIA_EXPIRED,  # the upload's parts were dropped by the server
    "FILE_PARTS_INVALID": _MEDIA_EXPIRED,
    "FILE_PARTS_MISSING": _MEDIA_EXPIRED,
    "FILE_REFERENCE_EXPIRED": _MEDIA_EXPIRED,  # a stored photo/document needs a fresh reference
    "FILE_REFERENCE_INVALID": _MEDIA_EXPIRED,
    "FILE_REFERENCE_EMPTY": _MEDIA_EXPIRED,
    "FILE_REFERENCE_X_EXPIRED": _MEDIA_EXPIRED,
    "FILE_REFERENCE_X_INVALID": _MEDIA_EXPIRED,
    "FILE_ID_INVALID": _MEDIA_EXPIRED,
    "MEDIA_EMPTY": _MEDIA_EXPIRED,  # the media the handle names does not exist (any more)
    "MEDIA_HANDLE_INVALID": _MEDIA_EXPIRED,  # our own handle could not be read back: upload again
    # Ours, not Telegram's: the group's history could not tell whether an unanswered send was posted.
    "OUTCOME_UNKNOWN": Rule(Kind.FAILED, OUTCOME_UNKNOWN),
}
_UNKNOWN_RULE = Rule(Kind.FAILED, UNKNOWN)
_FLOOD_WITHOUT_NUMBER_S = 60  # a flood name Telegram sent without its number: wait a minute
# A number inside a name (FILE_PART_3_MISSING, FILE_REFERENCE_0_EXPIRED): only a trailing number is
# turned into X where the error is named, so the table's spelling is reached from here.
_INNER_NUMBER = re.compile(r"_\d+_")


@dataclass(frozen=True, slots=True)
class Policy:
    """The settings the classifier depends on (a subset of `core.settings.Settings`)."""

    max_retries: int = 3
    retry_base_ms: int = 2000
    retry_max_ms: int = 120_000
    slowmode_default_s: int = 300
    account_pause_s: int = 3600

    @classmethod
    def of(cls, settings: object) -> Policy:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Kind
    status: Literal["sent", "pending", "failed", "cancelled"]
    reason: str | None = None
    retry_delay_ms: int | None = None  # pending: next attempt this long after now
    retry: int = 0  # the delivery's retry count after this attempt
    account_pause_s: int | None = None  # pause the whole account this long
    stop_batch: bool = False  # nothing more is sent from this account in this job
    error: str | None = None  # kept on the delivery for `unknown`
    tell: Tell | None = None  # a notice for the user
    wait_s: int | None = None  # failed on a group's slow mode: Telegram's wait, told as the time it ends


def rule_for(code: str) -> Rule:
    rule = TABLE.get(code)
    if rule is None:
        rule = TABLE.get(_INNER_NUMBER.sub("_X_", code), _UNKNOWN_RULE)
    return rule


def classify(error: SendFailure | None, *, retry: int, interval_s: int, key: str, policy: Policy) -> Decision:
    """The decision for one delivery. `error` None means Telegram accepted the message; `key`
    (the delivery id) makes the jitters reproducible."""
    if error is None:
        return Decision(Kind.SENT, "sent", retry=retry)
    rule = rule_for(error.code)
    seconds = error.seconds or 0
    match rule.kind:
        case Kind.SENT:
            return Decision(Kind.SENT, "sent", retry=retry)
        case Kind.FLOOD:
            wait_s = seconds or _FLOOD_WITHOUT_NUMBER_S
            return Decision(
                Kind.FLOOD, "pending", retry=retry, account_pause_s=wait_s, stop_batch=True,
                retry_delay_ms=wait_s * 1000 + flood_jitter_ms(key),
                tell="long_flood" if wait_s > interval_s else None,
            )
        case Kind.SLOWMODE:
            wait_s = seconds or policy.slowmode_default_s
            if wait_s > interval_s:
                return Decision(Kind.SLOWMODE, "failed", SLOWMODE, retry=retry, wait_s=wait_s)
            return Decision(Kind.SLOWMODE, "pending", retry=retry, retry_delay_ms=wait_s * 1000)
        case Kind.TRANSIENT | Kind.MEDIA_EXPIRED:
            if retry >= policy.max_retries:
                return Decision(rule.kind, "failed", RETRY_EXHAUSTED, retry=retry, error=_text(error))
            delay = backoff_ms(retry, policy.retry_base_ms, policy.retry_max_ms, key)
            return Decision(rule.kind, "pending", retry=retry + 1, retry_delay_ms=delay)
        case Kind.REVOKED:
            return Decision(Kind.REVOKED, "cancelled", "session_revoked", retry=retry, stop_batch=True,
                            tell="session_ended")
        case Kind.ACCOUNT_PAUSE:
            pause = policy.account_pause_s
            return Decision(Kind.ACCOUNT_PAUSE, "pending", retry=retry, account_pause_s=pause, stop_batch=True,
                            retry_delay_ms=pause * 1000 + flood_jitter_ms(key), tell="account_paused")
        case _:
            tell: Tell | None = "bad_content" if rule.reason == BAD_CONTENT else None
            error_text = _text(error) if rule.reason == UNKNOWN else None
            return Decision(Kind.FAILED, "failed", rule.reason, retry=retry, error=error_text, tell=tell)


def _text(error: SendFailure) -> str:
    text = f"{error.code}: {error.detail}" if error.detail else error.code
    return text if len(text) <= _ERROR_TEXT_MAX else text[: _ERROR_TEXT_MAX - 1] + "…"
