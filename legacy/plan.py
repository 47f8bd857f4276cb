"""From the older bot's snapshot to what tgcast stores: a pure function of the rows read, the time,
the options and what tgcast already holds. `legacy.importer` applies the plan through `db.legacy`.

A row the older bot still holds as it was at the previous import is left alone (its fingerprint is
unchanged), so a second run writes nothing and a run after the older bot ran longer brings only what
changed there. A user who already uses tgcast (a row the import did not create) is never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from core.content import content_hash
from core.phone import normalize_phone
from legacy import rules
from legacy.markdown import render_legacy
from legacy.report import Report
from legacy.rules import Access
from legacy.sessions import UnreadableSession, parse_session
from legacy.source import AccessRow, AccountRow, AttemptSummary, ConfigRow, GroupRow, HistoryRow, Snapshot

Dialect = Literal["pyrogram", "gramjs"]

# tgcast's history screen keeps a user's newest entries; older imported ones would only be pruned.
HISTORY_KEEP = 50


@dataclass(frozen=True, slots=True)
class Options:
    now: datetime
    min_interval: int
    max_interval: int
    stopped_at: datetime  # when the older worker stopped (default: now)
    use_last_run: bool = False  # groups never posted to: count from the config's last run instead
    interval_unit: rules.IntervalUnit | None = None  # None: the data decides
    admin_ids: frozenset[int] = frozenset()
    max_accounts: int = 3  # MAX_ACCOUNTS_PER_USER: a user's accounts beyond it are not imported


@dataclass(frozen=True, slots=True)
class Existing:
    """What tgcast holds before the import."""

    fingerprints: dict[tuple[str, str], str]  # (kind, legacy id) -> fingerprint of the last import
    users: frozenset[int]  # every bot user id
    imported_users: frozenset[int]  # those the import created
    active_tg_users: dict[int, int]  # tg user id -> owner, of active accounts


@dataclass(frozen=True, slots=True)
class UserPlan:
    user_id: int
    username: str | None
    first_name: str
    last_name: str | None
    status: str  # pending / active
    expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccountPlan:
    owner_id: int
    legacy_id: str  # the older row: a re-import updates the account it became
    tg_user_id: int | None
    phone: str
    session: str = field(repr=False)  # the Telethon string: a secret, encrypted when written
    status: str  # active / revoked
    flood_until: datetime | None


@dataclass(frozen=True, slots=True)
class GroupPlan:
    owner_id: int
    chat_id: int
    title: str
    kind: str
    selected: bool
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class MessagePlan:
    key: str  # what the config refers to
    owner_id: int
    text: str
    entities: list[dict[str, Any]]
    content_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConfigPlan:
    owner_id: int
    message_key: str | None
    interval_minutes: int | None
    active: bool
    next_run_at: datetime | None


@dataclass(frozen=True, slots=True)
class Mapping:
    kind: str
    legacy_id: str
    owner_id: int
    fingerprint: str


@dataclass(slots=True)
class Plan:
    report: Report
    users: list[UserPlan] = field(default_factory=list)
    accounts: list[AccountPlan] = field(default_factory=list)
    groups: list[GroupPlan] = field(default_factory=list)
    messages: list[MessagePlan] = field(default_factory=list)
    configs: list[ConfigPlan] = field(default_factory=list)
    mappings: list[Mapping] = field(default_factory=list)


def fingerprint(*parts: object) -> str:
    text = json.dumps(parts, default=str, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Person:
    """Every older row of one user id."""

    access: AccessRow | None = None
    created_at: datetime | None = None
    accounts: list[AccountRow] = field(default_factory=list)
    groups: list[GroupRow] = field(default_factory=list)
    config: ConfigRow | None = None
    history: list[HistoryRow] = field(default_factory=list)
    attempts: list[AttemptSummary] = field(default_factory=list)
    fallback_session: str | None = None
    seen: bool = False


def _people(snapshot: Snapshot, report: Report) -> dict[str, _Person]:
    people: dict[str, _Person] = defaultdict(_Person)
    for u in snapshot.users:
        people[u.id].seen = True
        people[u.id].created_at = u.created_at
    for a in snapshot.access:
        people[a.id].access = a
    for acc in snapshot.accounts:
        people[acc.user_id].accounts.append(acc)
    for g in snapshot.groups:
        people[g.user_id].groups.append(g)
    for c in snapshot.configs:
        people[c.user_id].config = c
    for h in snapshot.history:
        people[h.user_id].history.append(h)
    for t in snapshot.attempts:
        people[t.user_id].attempts.append(t)
    for s in snapshot.sessions:
        people[s.user_id].fallback_session = s.session
    report.read.update(user=len(people), account=len(snapshot.accounts), group=len(snapshot.groups),
                       config=len(snapshot.configs), message=len(snapshot.history))
    return people


def _dedupe_phones(snapshot: Snapshot, report: Report) -> set[str]:
    """Older account rows that lose to a newer row of the same phone (the Python bot moved a phone to
    its latest owner; the Node one may hold '998…' beside '+998…'): the newest stays connected."""
    by_phone: dict[str, list[AccountRow]] = defaultdict(list)
    for acc in snapshot.accounts:
        phone = normalize_phone(acc.phone) if acc.phone else None
        if phone:
            by_phone[phone].append(acc)
    losers: set[str] = set()
    for rows in by_phone.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda r: (rules.as_utc(r.updated_at) or rules.as_utc(r.created_at) or _MIN, r.id))
        for loser in rows[:-1]:
            losers.add(loser.id)
            report.note("account", loser.id, "phone_owned_twice", f"kept account {rows[-1].id}")
    return losers


_MIN = datetime.min.replace(tzinfo=UTC)


def build(snapshot: Snapshot, opts: Options, existing: Existing, report: Report) -> Plan:
    plan = Plan(report)
    people = _people(snapshot, report)
    phone_losers = _dedupe_phones(snapshot, report)
    unit = opts.interval_unit or rules.interval_unit(snapshot.flavour, [c.interval or 0 for c in snapshot.configs])
    report.facts["interval_unit"] = unit
    if snapshot.missing_optional:
        report.facts["missing_optional_columns"] = ", ".join(snapshot.missing_optional)
    dialect: Dialect = "pyrogram" if snapshot.flavour == "python" else "gramjs"
    taken_tg = dict(existing.active_tg_users)
    for legacy_id in sorted(people, key=lambda k: (len(k), k)):
        person = people[legacy_id]
        user_id = rules.user_id(legacy_id)
        if user_id is None:
            _skip_person(report, legacy_id, person)
            continue
        if user_id in existing.users and user_id not in existing.imported_users:
            report.note("user", legacy_id, "kept_tgcast_user")
            _count_person(report.skipped, person)
            continue
        _UserImport(plan, opts, existing, legacy_id, user_id, person, unit, dialect, phone_losers, taken_tg).run()
    return plan


def _count_person(counter: Any, person: _Person) -> None:
    counter.update(user=1, account=len(person.accounts), group=len(person.groups),
                   config=1 if person.config else 0, message=len(person.history))


def _skip_person(report: Report, legacy_id: str, person: _Person) -> None:
    report.note("user", legacy_id, "non_numeric_id")
    _count_person(report.skipped, person)


@dataclass
class _UserImport:
    plan: Plan
    opts: Options
    existing: Existing
    legacy_id: str
    user_id: int
    person: _Person
    unit: rules.IntervalUnit
    dialect: Dialect
    phone_losers: set[str]
    taken_tg: dict[int, int]
    _retry_at: datetime | None = None
    _too_long: bool = False

    @property
    def report(self) -> Report:
        return self.plan.report

    def _changed(self, kind: str, legacy_id: str, print_: str) -> bool:
        """Record the mapping; True when the row must be written (new, or changed at the source)."""
        self.plan.mappings.append(Mapping(kind, legacy_id, self.user_id, print_))
        if self.existing.fingerprints.get((kind, legacy_id)) == print_:
            self.report.unchanged[kind] += 1
            return False
        self.report.imported[kind] += 1
        return True

    def run(self) -> None:
        allowed = self._user()
        account_ok = self._account()
        last_posts = self._groups()
        self._config(allowed=allowed, account_ok=account_ok, last_posts=last_posts)

    # -- user and access
    def _user(self) -> bool:
        p, opts = self.person, self.opts
        access = rules.access_of(p.access.expires_at if p.access else None, p.access.created_at if p.access else None,
                                 opts.now, "python" if self.dialect == "pyrogram" else "node",
                                 has_row=p.access is not None)
        admin = self.user_id in opts.admin_ids
        self.report.access[access.value] += 1
        created = rules.as_utc((p.access.created_at if p.access else None) or p.created_at) or opts.now
        if access in (Access.PERMANENT, Access.ACTIVE, Access.EXPIRED):
            status, expires = "active", rules.as_utc(p.access.expires_at if p.access else None)
        elif access is Access.NONE and admin:
            status, expires = "active", None
            self.report.note("user", self.legacy_id, "admin")
        else:
            status, expires = "pending", created
            if access is Access.NONE:
                self.report.note("user", self.legacy_id, "pending_without_row")
        row = p.access
        user = UserPlan(self.user_id, rules.username(row.username if row else None),
                        ((row.first_name if row else None) or "").strip()[:64],
                        ((row.last_name if row else None) or "").strip()[:64] or None, status, expires, created)
        if self._changed("user", self.legacy_id, fingerprint(user)):
            self.plan.users.append(user)
        return admin or access in (Access.PERMANENT, Access.ACTIVE)

    # -- the accounts: every one of the user's, the older bot's "current" one first (it gets the groups)
    def _account(self) -> bool:
        rows = sorted(self.person.accounts, key=lambda r: (r.is_active is not False, rules.as_utc(r.created_at)
                                                           or _MIN, r.id), reverse=True)
        if not rows and self.person.fallback_session:
            rows = [AccountRow(f"session:{self.legacy_id}", self.legacy_id, self.person.fallback_session, None,
                               True, None, None, None)]
        if not rows:
            return False
        kept, extra = rows[: self.opts.max_accounts], rows[self.opts.max_accounts:]
        for row in extra:
            self.report.note("account", row.id, "extra_account",
                             f"user {self.legacy_id} keeps {', '.join(r.id for r in kept)}")
            self.report.skipped["account"] += 1
        seen_tg: set[int] = set()
        active = False
        for row in kept:
            active = self._one_account(row, seen_tg) or active
        return active

    def _one_account(self, chosen: AccountRow, seen_tg: set[int]) -> bool:
        session, tg_user_id, status = "", None, "active"
        try:
            parsed = parse_session(chosen.session or self.person.fallback_session or "")
            session, tg_user_id = parsed.to_telethon(), parsed.user_id
            self.report.sessions[parsed.format] += 1
        except UnreadableSession as exc:
            self.report.sessions["unreadable"] += 1
            self.report.note("account", chosen.id, "unreadable_session", exc.reason)
            status = "revoked"
        if tg_user_id is not None and tg_user_id in seen_tg:
            # One Telegram account is one tgcast account: the user's first row of it is the one kept.
            self.report.note("account", chosen.id, "same_account_twice")
            self.report.skipped["account"] += 1
            return False
        if tg_user_id is not None:
            seen_tg.add(tg_user_id)
        if chosen.is_active is False and status == "active":
            status = "revoked"
            self.report.note("account", chosen.id, "inactive_account")
        if chosen.id in self.phone_losers:
            status = "revoked"
        if status == "active" and tg_user_id is not None:
            holder = self.taken_tg.get(tg_user_id)
            if holder is not None and holder != self.user_id:
                status = "revoked"
                self.report.note("account", chosen.id, "tg_user_taken", f"held by user {holder}")
            else:
                self.taken_tg[tg_user_id] = self.user_id
        flood = rules.as_utc(chosen.flood_until)
        flood = flood if flood is not None and flood > self.opts.now else None
        if flood is not None:
            self.report.note("account", chosen.id, "flood_carried", f"until {flood:%Y-%m-%d %H:%M} UTC")
        phone = normalize_phone(chosen.phone) or (chosen.phone or "").strip()
        plan = AccountPlan(self.user_id, chosen.id, tg_user_id, phone, session, status, flood)
        print_ = fingerprint(chosen.id, hashlib.sha256(session.encode()).hexdigest(), tg_user_id, phone, status,
                             flood)
        if self._changed("account", chosen.id, print_):
            self.plan.accounts.append(plan)
        return status == "active"

    # -- groups, with the older bot's last post in each
    def _groups(self) -> list[datetime]:
        posts: dict[int, datetime] = {}
        retry: list[datetime] = []
        for t in self.person.attempts:
            chat = rules.group_id(t.target, None) or rules.group_id(t.target, "supergroup")
            at = rules.latest(rules.as_utc(t.last_sent_at), rules.as_utc(t.last_in_flight_at))
            if t.retry_at is not None:
                retry.append(rules.as_utc(t.retry_at))  # type: ignore[arg-type]
            if chat is not None and at is not None:
                posts[chat] = max(at, posts.get(chat, at))
        self._retry_at = max(retry) if retry else None
        by_target = {t.target.strip(): t for t in self.person.attempts}
        config = self.person.config
        fallback = self.opts.stopped_at
        if self.opts.use_last_run and config is not None and config.last_run_at is not None:
            fallback = rules.as_utc(config.last_run_at)  # type: ignore[assignment]
        seen: dict[int, GroupPlan] = {}
        selected_posts: list[datetime] = []
        for row in sorted(self.person.groups, key=lambda g: (g.is_active is False, g.id)):
            chat_id = rules.group_id(row.id, row.type)
            if chat_id is None:
                self.report.note("group", f"{self.legacy_id}/{row.id}", "unresolved_group", f"type {row.type!r}")
                self.report.skipped["group"] += 1
                continue
            if chat_id in seen:
                self.report.note("group", f"{self.legacy_id}/{row.id}", "duplicate_group")
                self.report.skipped["group"] += 1
                continue
            # Attempts name the target as the older bot addressed it: bare, or marked like the group.
            target = by_target.get(row.id.strip())
            last = posts.get(chat_id)
            if target is not None:
                last = rules.latest(last, rules.as_utc(target.last_sent_at), rules.as_utc(target.last_in_flight_at))
            last_sent = last or fallback
            group = GroupPlan(self.user_id, chat_id, (row.title or "").strip() or str(chat_id),
                              rules.group_kind(chat_id, row.type), row.is_active is not False, last_sent)
            seen[chat_id] = group
            if group.selected and last_sent is not None:
                selected_posts.append(last_sent)
            # The fallback time (the older worker's stop) is not evidence: a later run must not see a change.
            evidence = (row.id, group.chat_id, group.title, group.kind, group.selected, last)
            if self._changed("group", f"{self.legacy_id}/{row.id}", fingerprint(*evidence)):
                self.plan.groups.append(group)
        return selected_posts

    # -- the message and the broadcast config
    def _config(self, *, allowed: bool, account_ok: bool, last_posts: list[datetime]) -> None:
        config = self.person.config
        history = sorted(self.person.history, key=lambda h: (rules.as_utc(h.created_at) or _MIN, _num(h.id)))
        history = history[-HISTORY_KEEP:]
        built: list[MessagePlan] = []  # the history as planned, written now or at an earlier run
        for h in history:
            if not h.text.strip():
                continue
            message = self._message(f"h:{h.id}", h.text, rules.as_utc(h.created_at) or self.opts.now)
            if message is None:
                continue
            built.append(message)
            if self._changed("message", message.key, fingerprint(message)):
                self.plan.messages.append(message)
        if config is None:
            return
        text = (config.message or "").strip()
        message_key = None
        problems: list[str] = []
        if not text and history:
            text = next((h.text for h in reversed(history) if h.text.strip()), "")
            if text:
                self.report.note("config", config.id, "message_from_history")
        if not text:
            problems.append("empty_message")
        else:
            at = rules.as_utc(config.updated_at) or self.opts.now
            message = self._message(f"c:{config.id}", text, at)
            if message is not None:
                same = [m for m in built if m.content_hash == message.content_hash]
                if same:  # the current message is the history's entry: one row, not two
                    message_key = same[-1].key
                else:
                    message_key = message.key
                    if self._changed("message", message.key, fingerprint(message)):
                        self.plan.messages.append(message)
                if self._too_long:
                    problems.append("message_too_long")
        minutes, clamped = rules.interval_minutes(config.interval, self.unit, self.opts.min_interval,
                                                  self.opts.max_interval)
        if minutes is None:
            problems.append("interval_missing")
        elif clamped:
            self.report.note("config", config.id, "interval_clamped", f"{config.interval} {self.unit} → {minutes} min")
        if config.is_active and not allowed:
            problems.append("no_access_broadcast")
        if config.is_active and not account_ok:
            problems.append("no_session_broadcast")
        for problem in problems:
            if problem in ("empty_message", "message_too_long", "interval_missing") or config.is_active:
                self.report.note("config", config.id, problem)
        active = bool(config.is_active and not problems)
        next_run = None
        if active and minutes is not None:
            next_run = rules.first_run_at(now=self.opts.now, interval=timedelta(minutes=minutes),
                                          last_run_at=rules.as_utc(config.last_run_at), last_posts=last_posts,
                                          retry_at=self._retry_at)
        plan = ConfigPlan(self.user_id, message_key, minutes, active, next_run)
        evidence = sorted((t.target, t.last_sent_at, t.last_in_flight_at, t.retry_at) for t in self.person.attempts)
        print_ = fingerprint(config, message_key, allowed, account_ok, evidence)
        if self._changed("config", config.id, print_):
            self.plan.configs.append(plan)

    def _message(self, key: str, text: str, at: datetime) -> MessagePlan | None:
        rendered = render_legacy(text.strip(), self.dialect)
        self._too_long = bool(rendered.too_long)
        if rendered.dropped:
            self.report.note("message", key, "formatting_dropped", ", ".join(rendered.dropped))
        if rendered.refused:
            self.report.note("message", key, "refused_by_older_library")
        if not rendered.text.strip():
            return None
        return MessagePlan(key, self.user_id, rendered.text, list(rendered.entities),
                           content_hash("text", rendered.text, list(rendered.entities), None), at)


def _num(text: str) -> int:
    return int(text) if text.isdigit() else 0


def legacy_user_ids(rows: Iterable[str]) -> set[int]:
    return {uid for uid in (rules.user_id(r) for r in rows) if uid is not None}
