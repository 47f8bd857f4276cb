"""Pure rules for reading the older bot's values: ids, access, intervals, times and the cut-over.

No I/O here: the planner feeds these the rows `legacy.source` read, so every rule is tested cheaply
and exhaustively (tests/test_legacy_rules.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

Flavour = Literal["node", "python"]

_INT64_MAX = 2**63 - 1
# Marked ids (the Bot API's): a basic group is -1 … -999999999999, a channel or supergroup is
# -(10^12 + its id). Telling them apart by the text "-100" would misread a basic group like -1001.
_CHANNEL_MARK = 10**12
_BASIC_GROUP_MAX = _CHANNEL_MARK - 1
# A Python-rewrite pending row is written at first contact with `expires_at = now`, a few
# microseconds after `created_at`; an admin's grant or a lapsed one is days away from it.
_PENDING_SLACK = timedelta(seconds=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")


def as_utc(value: datetime | None) -> datetime | None:
    """Every legacy timestamp is naive UTC (both versions wrote `utcnow()`); the database's own time
    zone (UTC+5 on the Python deployment) never entered them, so UTC is attached, not converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def user_id(text: object) -> int | None:
    """A Telegram user id stored as text; None for anything else (`/adduser @name` stored names)."""
    raw = str(text).strip() if text is not None else ""
    if not raw.isascii() or not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value <= _INT64_MAX else None


def username(text: str | None) -> str | None:
    """A Telegram username, or None for the placeholders the older bot stored instead ("User", a first
    name with spaces, an empty string); the profile is refreshed on the person's next message anyway."""
    raw = (text or "").strip().lstrip("@")
    if raw == "User" or not _USERNAME.fullmatch(raw):
        return None
    return raw


# ---- access -----------------------------------------------------------------------------------


class Access(StrEnum):
    PERMANENT = "permanent"
    ACTIVE = "active"  # until a date in the future
    PENDING = "pending"  # asked, never granted
    EXPIRED = "expired"  # granted once, lapsed
    NONE = "none"  # no access row: never asked, banned (a ban deleted the row) or an admin


def access_of(expires_at: datetime | None, created_at: datetime | None, now: datetime, flavour: Flavour,
              *, has_row: bool = True) -> Access:
    """What an `allowed_users` row means. Both pending and expired rows have `expires_at <= now`:
    Node marks a pending one with the epoch, Python with `expires_at ≈ created_at`."""
    if not has_row:
        return Access.NONE
    expires = as_utc(expires_at)
    if expires is None:
        return Access.PERMANENT
    if expires > now:
        return Access.ACTIVE
    if expires <= _EPOCH:
        return Access.PENDING
    created = as_utc(created_at)
    if flavour == "python" and created is not None and abs(expires - created) < _PENDING_SLACK:
        return Access.PENDING
    return Access.EXPIRED


# ---- groups -----------------------------------------------------------------------------------

GroupKind = Literal["group", "supergroup", "forum", "channel"]


def group_id(raw: object, legacy_type: str | None) -> int | None:
    """The marked (Bot API) id of a legacy group id: Python stored `-100…` and `-N`; Node stored bare
    positive ids, whose meaning comes from the row's type. None when it cannot be known offline."""
    text = str(raw).strip() if raw is not None else ""
    body = text[1:] if text.startswith("-") else text
    if not body.isascii() or not body.isdigit() or int(body) == 0:
        return None
    value = int(text)
    if value < 0:
        return value if value >= -_INT64_MAX else None
    kind = (legacy_type or "").strip().lower()
    if kind in {"supergroup", "channel", "megagroup", "forum"}:
        marked = -(_CHANNEL_MARK + value)
    elif kind in {"chat", "group"}:
        marked = -value if value <= _BASIC_GROUP_MAX else 0
        if not marked:
            return None
    else:
        return None
    return marked if marked >= -_INT64_MAX else None


def group_kind(chat_id: int, legacy_type: str | None) -> GroupKind:
    """tgcast's kind: a marked channel id is a channel or supergroup (forums are learnt online), `-N` a basic group."""
    if chat_id <= -_CHANNEL_MARK:
        return "channel" if (legacy_type or "").strip().lower() == "channel" else "supergroup"
    return "group"


# ---- intervals --------------------------------------------------------------------------------

IntervalUnit = Literal["seconds", "minutes", "milliseconds"]


def interval_unit(flavour: Flavour, values: Iterable[int]) -> IntervalUnit:
    """Python stored seconds. Node's unit was never written down, so the data decides: all multiples
    of 60,000 read as milliseconds, all multiples of 60 as seconds, anything else as minutes."""
    if flavour == "python":
        return "seconds"
    present = [v for v in values if v and v > 0]
    if present and all(v % 60_000 == 0 for v in present):
        return "milliseconds"
    if all(v % 60 == 0 for v in present):
        return "seconds"
    return "minutes"


def interval_minutes(value: int | None, unit: IntervalUnit, low: int, high: int) -> tuple[int | None, bool]:
    """tgcast's whole minutes within [low, high], rounded up (never posting more often than the older
    bot did); the flag says it was clamped (or rounded), for the report."""
    if value is None or value <= 0:
        return None, False
    seconds = {"seconds": value, "minutes": value * 60, "milliseconds": value / 1000}[unit]
    minutes = math.ceil(seconds / 60)
    clamped = min(max(minutes, low), high)
    return clamped, clamped * 60 != seconds


# ---- the cut-over -------------------------------------------------------------------------------


def latest(*values: datetime | None) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def first_run_at(*, now: datetime, interval: timedelta, last_run_at: datetime | None,
                 last_posts: Iterable[datetime], retry_at: datetime | None) -> datetime:
    """When tgcast's first round of an imported broadcast may start: never before one interval after
    the older bot's last round or its earliest-spaced group, nor before a retry it still owed (a slow
    mode or flood wait Telegram gave it), nor in the past. The per-group spacing holds each group back
    further on its own (`groups.last_sent_at`)."""
    candidates = [now]
    if last_run_at is not None:
        candidates.append(last_run_at + interval)
    posts = list(last_posts)
    if posts:
        candidates.append(min(posts) + interval)
    if retry_at is not None and retry_at > now:
        candidates.append(retry_at)
    return max(candidates)
