"""The import's report: counts per kind and every row skipped or changed, with the reason.

Reasons are stable codes (the JSON report and the tests use them); the text report adds a line of
explanation per code. Nothing secret is ever put here: a session is named by its older row id, and at
most by its format, data centre and key id.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

EXPLAINED: dict[str, str] = {
    "non_numeric_id": "user id is not a Telegram id (e.g. '@name' typed into /adduser): row skipped",
    "unresolved_group": "group id cannot be turned into a marked id offline: group skipped",
    "phone_owned_twice": "one phone under several rows: the newest stays connected, the others need log-in",
    "tg_user_owned_twice": "one Telegram account under several users: the newest stays connected",
    "extra_account": "more accounts than MAX_ACCOUNTS_PER_USER: the current ones are imported, this one is not",
    "same_account_twice": "one Telegram account twice under one user: imported once",
    "unreadable_session": "session string in no known format: imported as needing log-in",
    "inactive_account": "the older bot marked the account inactive: imported as needing log-in",
    "interval_clamped": "interval converted to whole minutes within tgcast's bounds",
    "interval_missing": "no interval: broadcast imported stopped",
    "empty_message": "no message text (none in history either): broadcast imported stopped",
    "message_from_history": "empty message: the last text of the history is used, as the older bot did",
    "message_too_long": "message longer than Telegram allows: broadcast imported stopped",
    "formatting_dropped": "formatting tgcast cannot send was dropped from the message",
    "refused_by_older_library": "the older bot's library could not parse this text, so it was never posted: "
                                "imported as well as it reads; worth a look",
    "no_access_broadcast": "broadcast running for a user without access: imported stopped",
    "no_session_broadcast": "broadcast running without a usable session: imported stopped",
    "pending_without_row": "no access row (never approved, or banned: a ban deleted the row): imported as pending",
    "admin": "configured admin (ADMIN_IDS): no access row needed",
    "kept_tgcast_user": "this user already uses tgcast: kept as it is there",
    "tg_user_taken": "the Telegram account is connected to another tgcast user: imported as needing log-in",
    "flood_carried": "a flood wait still running was carried over",
    "duplicate_group": "the same group twice (bare and marked id): imported once",
}


@dataclass(frozen=True, slots=True)
class Note:
    kind: str  # user, account, group, config, message
    legacy_id: str
    reason: str  # a key of EXPLAINED
    detail: str = ""


@dataclass(slots=True)
class Report:
    source: str
    flavour: str
    dry_run: bool
    read: Counter[str] = field(default_factory=Counter)  # rows read per kind
    imported: Counter[str] = field(default_factory=Counter)  # rows written (new or changed)
    unchanged: Counter[str] = field(default_factory=Counter)  # rows already imported as they are
    skipped: Counter[str] = field(default_factory=Counter)
    access: Counter[str] = field(default_factory=Counter)  # permanent, active, pending, expired, none
    sessions: Counter[str] = field(default_factory=Counter)  # gramjs, telethon, pyrogram, unreadable
    notes: list[Note] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # interval unit, missing optional columns, …

    def note(self, kind: str, legacy_id: object, reason: str, detail: str = "") -> None:
        assert reason in EXPLAINED, reason
        self.notes.append(Note(kind, str(legacy_id), reason, detail))

    def reasons(self) -> Counter[str]:
        return Counter(n.reason for n in self.notes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "flavour": self.flavour, "dry_run": self.dry_run,
            "read": dict(self.read), "imported": dict(self.imported), "unchanged": dict(self.unchanged),
            "skipped": dict(self.skipped), "access": dict(self.access), "sessions": dict(self.sessions),
            "reasons": dict(self.reasons()), "notes": [asdict(n) for n in self.notes], "facts": self.facts,
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2, sort_keys=True, default=str)

    def as_text(self, *, max_notes: int = 200) -> str:
        kinds = ["user", "account", "group", "config", "message"]
        lines = [
            f"source: {self.source} ({self.flavour} schema)",
            "DRY RUN: nothing was written" if self.dry_run else "imported",
            "",
            f"{'kind':<10}{'read':>10}{'imported':>10}{'unchanged':>11}{'skipped':>9}",
        ]
        for kind in kinds:
            lines.append(f"{kind:<10}{self.read[kind]:>10}{self.imported[kind]:>10}"
                         f"{self.unchanged[kind]:>11}{self.skipped[kind]:>9}")
        lines.append("")
        lines.append("access: " + ", ".join(f"{k} {v}" for k, v in sorted(self.access.items())))
        lines.append("sessions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.sessions.items())))
        for key, value in sorted(self.facts.items()):
            lines.append(f"{key}: {value}")
        reasons = self.reasons()
        if reasons:
            lines += ["", "rows skipped or changed:"]
            for reason, count in sorted(reasons.items()):
                lines.append(f"  {reason} ({count}): {EXPLAINED[reason]}")
            lines.append("")
            for n in self.notes[:max_notes]:
                lines.append(f"  {n.kind} {n.legacy_id}: {n.reason}" + (f" — {n.detail}" if n.detail else ""))
            if len(self.notes) > max_notes:
                lines.append(f"  … {len(self.notes) - max_notes} more (--json lists every one)")
        return "\n".join(lines)
