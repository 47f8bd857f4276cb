"""Rows as dataclasses (psycopg `class_row`). Field names match the columns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class BotUser:
    user_id: int
    username: str | None
    first_name: str
    last_name: str | None
    language_code: str | None
    language: str | None
    status: str
    expires_at: datetime | None
    granted_notified_at: datetime | None
    profile_refreshed_at: datetime
    created_at: datetime
    updated_at: datetime

    def allowed_at(self, now: datetime) -> bool:
        return self.status == "active" and (self.expires_at is None or self.expires_at > now)

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or str(self.user_id)


@dataclass(slots=True)
class Account:
    id: int  # the account's own id: a user may have several, the oldest (lowest id) first
    owner_id: int
    tg_user_id: int | None  # unknown for an imported session until it is used online
    phone: str
    session_enc: bytes
    status: str
    flood_until: datetime | None
    pause_reason: str | None
    created_at: datetime
    updated_at: datetime
    login_id: int = 0  # one per login: what the "session ended" notice is remembered by
    name: str = ""  # the account's name at Telegram when it logged in ("" when not known)


@dataclass(slots=True)
class Group:
    owner_id: int
    chat_id: int
    title: str
    kind: str
    access_hash: int | None
    topic_id: int | None
    selected: bool
    fail_streak: int
    last_failure: str | None
    added_at: datetime
    last_sent_at: datetime | None = None  # the broadcast's last post here (per-group spacing)
    last_message_id: int | None = None  # that post's Telegram message id (docs/runtime.md, "No pile-up")
    account_id: int | None = None  # the account that posts here (None: logged out, none chosen yet)


@dataclass(slots=True)
class Media:
    id: int
    owner_id: int
    kind: str
    bot_file_id: str
    file_name: str
    mime_type: str
    size: int
    sha256: str
    data: bytes
    created_at: datetime


@dataclass(slots=True)
class Message:
    id: int
    owner_id: int
    kind: str
    text: str
    entities: list[dict[str, Any]]
    media_id: int | None
    content_hash: str
    created_at: datetime
    deleted_at: datetime | None


@dataclass(slots=True)
class Config:
    owner_id: int
    message_id: int | None
    interval_minutes: int | None
    active: bool
    next_run_at: datetime | None
    cycle: int
    last_scheduled_at: datetime | None
    updated_at: datetime
    pile_up: str = "off"  # off, skip, replace (docs/runtime.md, "No pile-up")


@dataclass(slots=True)
class Cycle:
    id: int
    owner_id: int
    seq: int
    message_id: int
    interval_minutes: int
    scheduled_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    outcome: str | None
    total: int
    sent: int
    failed: int
    cancelled: int
    reasons: dict[str, int]
    lag_ms: int | None
    media_handle: str | None
    lock_busy: int
    last_continuation: str | None
    created_at: datetime
    # Per group not posted to: {"chat_id", "title", "reason", "until", "removed"} (db/cycles.py).
    failures: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # groups skipped because the previous post was still the last message


@dataclass(slots=True)
class Delivery:
    id: int
    cycle_id: int
    owner_id: int
    chat_id: int
    position: int
    status: str
    retry: int
    next_attempt_at: datetime
    lease_until: datetime | None
    random_id: int
    sent_at: datetime | None
    tg_message_id: int | None
    reason: str | None
    error: str | None
    updated_at: datetime
    wait_until: datetime | None = None  # a slow mode's end, for a post that failed on it
    unsure_since: datetime | None = None  # the first attempt that may have been posted, unanswered
    account_id: int | None = None  # the account this post is sent from


@dataclass(slots=True)
class Announcement:
    id: int
    admin_id: int
    from_chat_id: int
    source_message_id: int
    progress_message_id: int | None
    status: str
    total: int
    delivered: int
    failed: int
    blocked: int
    last_user_id: int
    created_at: datetime
    finished_at: datetime | None
