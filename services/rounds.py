"""When the user's rounds go out, as the menu and the notices tell it (docs/bot.md, "When things happen").

The tick decides with `core.schedule`; this module asks the very same rules (the interval lower
bound, the jitter, a flood pause, per-group spacing), so what the bot promises is what the tick
then does. Times are shown in UTC with a relative part ("in 3 min") that needs no time zone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg import AsyncConnection

from core import outcomes
from core.i18n import Translator
from core.schedule import cycle_jitter_ms, cycle_start
from db import cycles, groups
from db.cycles import LastRounds, OpenRound
from db.rows import Account, Config, Cycle


def next_round_at(config: Config, *, jitter_max_ms: int, flood_until: datetime | None = None,
                  last_post_floor: datetime | None = None) -> datetime | None:
    """When the next round not created yet makes its first post; None when the broadcast is off.

    The tick starts it at `cycle_start(next_run_at, last_scheduled_at, interval)` — never earlier than
    an interval after the previous start — or at the end of a flood pause, whichever is later, plus
    the round's own jitter; and no group is posted less than an interval after its last post, so
    when every selected group was posted, the first post waits for the earliest of them. The result
    may lie in the past: the round is due and goes out at the tick's next pass."""
    if not config.active or config.next_run_at is None or not config.interval_minutes:
        return None
    interval = timedelta(minutes=config.interval_minutes)
    start = cycle_start(config.next_run_at, config.last_scheduled_at, config.interval_minutes)
    if flood_until is not None and flood_until > start:
        start = flood_until  # the tick postpones a paused account's round to the pause's end
    at = start + timedelta(milliseconds=cycle_jitter_ms(config.owner_id, config.cycle + 1, jitter_max_ms))
    if last_post_floor is not None:
        at = max(at, last_post_floor + interval)
    return at


@dataclass(frozen=True, slots=True)
class Outlook:
    active: bool
    current: OpenRound | None  # created and not finished: prepared, or going out
    next_at: datetime | None  # the first post of the next round not created yet
    paused_until: datetime | None  # Telegram asked the account to pause sending until then
    now: datetime

    @property
    def current_is_sending(self) -> bool:
        """The current round has started (or is due to): its message can no longer change."""
        return self.current is not None and (self.current.started_at is not None or self.current.done > 0
                                             or self.current_first_post <= self.now)

    @property
    def current_first_post(self) -> datetime:
        assert self.current is not None
        return self.current.next_post_at or self.current.run_at


def paused_until(owned: Sequence[Account], now: datetime) -> datetime | None:
    """When sending resumes, if Telegram paused every active account of the user: the earliest pause's
    end. None while any active account may send (its groups go out; the tick delays the round only when
    all are paused, so saying "paused" then would be untrue)."""
    active = [a for a in owned if a.status == "active"]
    ends = [a.flood_until for a in active if a.flood_until is not None and a.flood_until > now]
    return min(ends) if active and len(ends) == len(active) else None


async def outlook(conn: AsyncConnection, config: Config | None, owned: Sequence[Account], *, jitter_max_ms: int,
                  now: datetime | None = None) -> Outlook:
    """The broadcast as the user's screens tell it; `owned` are the user's accounts."""
    now = now or datetime.now(UTC)
    active = bool(config and config.active)
    paused = paused_until(owned, now)
    if config is None or not active:
        return Outlook(False, None, None, paused, now)
    current = await cycles.open_round(conn, config.owner_id)
    floor = await groups.last_post_floor(conn, config.owner_id)
    next_at = next_round_at(config, jitter_max_ms=jitter_max_ms, flood_until=paused, last_post_floor=floor)
    return Outlook(active, current, next_at, paused, now)


# ---- words ---------------------------------------------------------------------------------------


def relative(tr: Translator, at: datetime, now: datetime) -> str:
    """'in 3 min', 'in 2 h 5 min', 'in 6 d 23 h': rounded up, so 'in 1 min' is never late."""
    minutes = max(1, math.ceil((at - now).total_seconds() / 60))
    if minutes < 60:
        return tr("menu.in_minutes", minutes=minutes)
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return tr("menu.in_hours", hours=hours, minutes=minutes)
    days, hours = divmod(hours, 24)
    return tr("menu.in_days", days=days, hours=hours)


def clock(at: datetime, now: datetime) -> str:
    at, now = at.astimezone(UTC), now.astimezone(UTC)
    return f"{at:%H:%M} UTC" if at.date() == now.date() else f"{at:%Y-%m-%d %H:%M} UTC"


def when(tr: Translator, at: datetime, now: datetime) -> dict[str, str]:
    return {"time": clock(at, now), "relative": relative(tr, at, now)}


def last_round_lines(tr: Translator, last: LastRounds, prefix: str) -> list[str]:
    """The last round that ran, and apart from it a round a Stop cancelled before it posted; `prefix`
    names the screen's keys (`menu.status_`, `admin.card_`). A round queued ahead and cancelled is
    not the last round: reporting it as such hid what the round before it had done."""
    lines = [last_ran_line(tr, last.ran, prefix), *failure_lines(tr, last.ran, datetime.now(UTC))]
    if last.ran is not None and last.ran.skipped > 0:  # by the no-pile-up rule: not failures
        lines.append(tr.n(prefix + "skipped_on_top", last.ran.skipped, count=last.ran.skipped))
    if last.cancelled is not None:
        lines.append(tr(prefix + "next_cancelled", time=clock(last.cancelled.run_at, datetime.now(UTC))))
    return lines


def last_ran_line(tr: Translator, ran: Cycle | None, prefix: str) -> str:
    if ran is None or ran.finished_at is None:
        return tr(prefix + "no_cycles")
    time = f"{ran.finished_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if ran.cancelled > 0:
        return tr(prefix + "last_stopped_partly", time=time, sent=ran.sent, failed=ran.failed,
                  cancelled=ran.cancelled)
    return tr(prefix + "last_cycle", sent=ran.sent, failed=ran.failed, time=time)


FAILURES_SHOWN = 10  # a long list of groups would push the buttons off the screen


def failure_lines(tr: Translator, ran: Cycle | None, now: datetime) -> list[str]:
    """Why each group of the round was not posted to, one line per group: "failed 1" alone left the
    user guessing. A slow mode says when it ends (Telegram's time, not a rounded duration); a group
    taken off the list after its third failing round says so."""
    if ran is None:
        return []
    lines = []
    for failure in ran.failures[:FAILURES_SHOWN]:
        reason = str(failure.get("reason") or "unknown")
        until = failure.get("until")
        if reason == "slowmode" and until:
            why = tr("menu.why_slowmode_until", time=clock(datetime.fromisoformat(until), now))
        else:
            why = tr(f"menu.why_{reason}" if reason in _REASONS else "menu.why_unknown")
        if failure.get("removed"):
            why = tr("menu.why_removed", reason=why)
        lines.append(tr("menu.failed_group", title=html.escape(str(failure.get("title") or "")), reason=why))
    hidden = len(ran.failures) - FAILURES_SHOWN
    if hidden > 0:
        lines.append(tr("menu.failed_more", count=hidden))
    return lines


# The delivery failure reasons (core/outcomes.py) each with its own text; anything else reads "unknown".
_REASONS = frozenset({outcomes.SLOWMODE, outcomes.FORBIDDEN, outcomes.UNREACHABLE, outcomes.TOPIC_CLOSED,
                      outcomes.BAD_CONTENT, outcomes.RETRY_EXHAUSTED, outcomes.OUTCOME_UNKNOWN,
                      outcomes.UNKNOWN})


def status_lines(tr: Translator, view: Outlook, *, selected_groups: int) -> list[str]:
    """The menu's lines on what goes out when (nothing while the broadcast is off)."""
    if not view.active:
        return []
    lines = []
    if view.paused_until is not None:
        lines.append(tr("menu.status_paused", **when(tr, view.paused_until, view.now)))
    if selected_groups == 0:
        lines.append(tr("menu.status_no_groups"))
        return lines
    if view.current is not None and view.current_is_sending:
        lines.append(tr.n("menu.status_round_now", view.current.total, done=view.current.done,
                          total=view.current.total))
        if view.next_at is not None:
            lines.append(tr("menu.status_round_then", **when(tr, max(view.next_at, view.now), view.now)))
    elif view.current is not None:
        lines.append(tr("menu.status_next_round", **when(tr, view.current_first_post, view.now)))
    elif view.next_at is not None and view.next_at > view.now:
        lines.append(tr("menu.status_next_round", **when(tr, view.next_at, view.now)))
    elif view.next_at is not None:
        lines.append(tr("menu.status_next_due"))
    return lines


def applies_line(tr: Translator, view: Outlook, message_id: int) -> str | None:
    """From which round a message just made current goes out (None while the broadcast is off).

    A round is created a little ahead of its time (the tick's due window) and keeps the message it
    was created with, so a message saved after that waits for the round after it."""
    if not view.active:
        return None
    later = max(view.next_at, view.now) if view.next_at is not None else None
    current = view.current
    if current is not None and current.message_id != message_id and later is not None:
        if view.current_is_sending:
            return tr("message.applies_after_sending", **when(tr, later, view.now))
        return tr("message.applies_after_prepared", current=clock(view.current_first_post, view.now),
                  **when(tr, later, view.now))
    at = view.current_first_post if current is not None else view.next_at
    if at is None:
        return None
    if at <= view.now:
        return tr("message.applies_due")
    return tr("message.applies_next", **when(tr, at, view.now))
