"""The soak's evidence: a ledger of every delivery row ever seen, what "Telegram" accepted, and the
verdict computed from both.

Delivery rows of a finished cycle are pruned when the config's next cycle is created, so the harness
snapshots the table every second and keeps the union (ids and random ids never change). Every message
the emulator accepted carries its sender and `random_id`; the ledger maps a random id back to its
(cycle, chat), which is what "sent twice" and "lost" are counted on.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.rows import dict_row
from redis import Redis

from bench.common import percentile
from bench.seed import TG_BASE, USER_BASE


@dataclass(slots=True)
class Delivery:
    id: int
    cycle_id: int
    owner_id: int
    chat_id: int
    status: str


class Ledger:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.by_rid: dict[int, Delivery] = {}
        self.history: dict[int, list[tuple[float, str]]] = {}
        self.snapshots = 0
        self.failed_snapshots = 0
        self._lock = threading.Lock()

    def snapshot(self) -> None:
        try:
            with psycopg.connect(self.database_url, connect_timeout=2) as conn:
                rows = conn.execute(
                    "SELECT id, cycle_id, owner_id, chat_id, status, random_id FROM deliveries"
                ).fetchall()
        except psycopg.Error:
            self.failed_snapshots += 1  # PostgreSQL is down: nothing can change meanwhile either
            return
        at = time.time()
        with self._lock:
            for did, cycle_id, owner_id, chat_id, status, rid in rows:
                known = self.by_rid.get(rid)
                if known is None or known.status != status:
                    # Each change of a row, as seen by the snapshots: what a resend's diagnosis reads.
                    self.history.setdefault(rid, []).append((at, status))
                self.by_rid[rid] = Delivery(did, cycle_id, owner_id, chat_id, status)
            self.snapshots += 1

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            self.snapshot()


@dataclass(slots=True)
class Post:
    chat_id: int
    sender: int
    random_id: int
    at: float


def read_posts(fake_redis_url: str, prefix: str = "tgcast:fake:") -> list[Post]:
    posts = []
    with Redis.from_url(fake_redis_url) as r:
        for key in r.scan_iter(f"{prefix}posted:*", count=1000):
            for entry in r.lrange(key, 0, -1):
                body = json.loads(entry.decode().partition("|")[2])
                posts.append(Post(body["chat_id"], body["from_tg_user_id"], body["random_id"], body["at"]))
    return posts


def _per_account(fake_redis_url: str, pattern: str) -> dict[int, bytes]:
    with Redis.from_url(fake_redis_url) as r:
        return {int(key.decode().rpartition(":")[2]): r.get(key) or b"0"
                for key in r.scan_iter(pattern, count=1000)}


def read_peaks(fake_redis_url: str, prefix: str = "tgcast:fake:") -> dict[int, int]:
    """Per account (Telegram user id): the most of its connections the emulator ever saw open at once."""
    return {uid: int(v) for uid, v in _per_account(fake_redis_url, f"{prefix}peak:*").items()}


def read_peak_times(fake_redis_url: str, prefix: str = "tgcast:fake:") -> dict[int, float]:
    """Per account: when (unix time, the emulator's clock) it reached its peak of open connections."""
    return {uid: float(v) for uid, v in _per_account(fake_redis_url, f"{prefix}peak_at:*").items()}


@dataclass(slots=True)
class Cycle:
    id: int
    owner_id: int
    seq: int
    interval_minutes: int
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    status: str
    total: int
    sent: int
    failed: int
    cancelled: int


def read_cycles(database_url: str) -> list[Cycle]:
    with psycopg.connect(database_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, owner_id, seq, interval_minutes, scheduled_at, started_at, finished_at, created_at,"
            " status, total, sent, failed, cancelled FROM cycles ORDER BY owner_id, seq"
        )
        return [Cycle(**row) for row in cur.fetchall()]


@dataclass
class Verdict:
    cycles: int = 0
    expected: int = 0
    sent_once: int = 0
    sent_twice: int = 0
    failed: int = 0
    cancelled: int = 0
    lost: int = 0
    lost_detail: dict[str, int] = field(default_factory=dict)
    unattributed_posts: int = 0
    early: int = 0
    overlapping: int = 0
    too_close: int = 0  # a group posted twice by one broadcast less than the interval apart
    unfinished_cycles: int = 0
    lag_ms: list[float] = field(default_factory=list)
    # Telegram ends a session open in two places at once (AUTH_KEY_DUPLICATED): the most connections of
    # one account open at once must be 1, and `sessions_doubled` counts the accounts above that.
    peak_connections: int = 0
    sessions_doubled: int = 0
    # The same random_id posted again: "Telegram" had forgotten it (FAKE_RANDOM_ID_TTL_S), so the
    # resend came at least that long after the post. Gaps in seconds, for the table.
    resends: int = 0
    resend_gaps_s: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.sent_twice or self.lost or self.early or self.overlapping or self.too_close
                    or self.unattributed_posts or self.sessions_doubled or self.resends)


def judge(cycles: list[Cycle], ledger: Ledger, posts: list[Post], cut: datetime,
          peaks: dict[int, int] | None = None) -> Verdict:
    """Cycles created up to `cut` (the end of the fault phase) are the ones judged; later ones are
    still running when the harness stops and only count toward duplicates."""
    v = Verdict()
    judged = {c.id: c for c in cycles if c.created_at <= cut}
    v.cycles = len(judged)
    v.expected = sum(c.total for c in judged.values())

    per_delivery: Counter[tuple[int, int]] = Counter()  # (cycle, chat) -> accepted posts
    per_group: dict[tuple[int, int], list[tuple[float, int]]] = defaultdict(list)  # (owner, chat) -> (at, cycle)
    first_post: dict[int, float] = {}
    last_post: dict[int, float] = {}
    for post in posts:
        d = ledger.by_rid.get(post.random_id)
        if d is None or d.chat_id != post.chat_id or TG_BASE + (d.owner_id - USER_BASE) != post.sender:
            v.unattributed_posts += 1
            continue
        per_delivery[(d.cycle_id, d.chat_id)] += 1
        per_group[(d.owner_id, d.chat_id)].append((post.at, d.cycle_id))
        first_post[d.cycle_id] = min(first_post.get(d.cycle_id, post.at), post.at)
        last_post[d.cycle_id] = max(last_post.get(d.cycle_id, post.at), post.at)
    v.sent_twice = sum(1 for n in per_delivery.values() if n > 1)

    # Counted on every post, attributed or not: a resend is a resend whoever's it is.
    first_at: dict[tuple[int, int], float] = {}
    for post in sorted(posts, key=lambda p: p.at):
        key = (post.sender, post.random_id)
        if key in first_at:
            v.resends += 1
            v.resend_gaps_s.append(post.at - first_at[key])
        else:
            first_at[key] = post.at
    v.peak_connections = max((peaks or {}).values(), default=0)
    v.sessions_doubled = sum(1 for n in (peaks or {}).values() if n > 1)

    posted_per_cycle: Counter[int] = Counter()
    for (cycle_id, _), n in per_delivery.items():
        if cycle_id in judged and n == 1:
            v.sent_once += 1
        posted_per_cycle[cycle_id] += 1
    observed_per_cycle: Counter[int] = Counter(d.cycle_id for d in ledger.by_rid.values())

    not_terminal = sent_not_posted = posted_not_recorded = unobserved = 0
    for c in judged.values():
        v.failed += c.failed
        v.cancelled += c.cancelled
        not_terminal += c.total - c.sent - c.failed - c.cancelled
        sent_not_posted += max(0, c.sent - posted_per_cycle[c.id])
        posted_not_recorded += max(0, posted_per_cycle[c.id] - c.sent)
        unobserved += max(0, c.total - observed_per_cycle[c.id])
        if c.status == "running":
            v.unfinished_cycles += 1
        if c.started_at is not None:
            v.lag_ms.append((c.started_at - c.scheduled_at).total_seconds() * 1000)
    v.lost_detail = {"never terminal": not_terminal, "recorded sent, never posted": sent_not_posted,
                     "posted, not recorded sent": posted_not_recorded, "rows never observed": unobserved}
    v.lost = not_terminal + sent_not_posted

    by_owner: dict[int, list[Cycle]] = defaultdict(list)
    for c in cycles:
        by_owner[c.owner_id].append(c)
    for owned in by_owner.values():
        owned.sort(key=lambda c: c.seq)
        for prev, cur in itertools.pairwise(owned):
            if cur.id not in judged:
                continue
            too_soon = cur.scheduled_at < prev.scheduled_at + timedelta(minutes=prev.interval_minutes)
            posted_early = cur.id in first_post and first_post[cur.id] < cur.scheduled_at.timestamp()
            if too_soon or posted_early or (cur.started_at and cur.started_at < cur.scheduled_at):
                v.early += 1
            db_overlap = prev.finished_at is None or (cur.started_at is not None and cur.started_at < prev.finished_at)
            post_overlap = (cur.id in first_post and prev.id in last_post and first_post[cur.id] < last_post[prev.id])
            if db_overlap or post_overlap:
                v.overlapping += 1
    # The rule users care about, on the times "Telegram" received the posts: per group, two posts of one
    # broadcast at least the (later cycle's) interval apart. A repeat within one cycle counts as sent twice.
    interval_of = {c.id: c.interval_minutes * 60 for c in cycles}
    for timeline in per_group.values():
        timeline.sort()
        for (at_a, cycle_a), (at_b, cycle_b) in itertools.pairwise(timeline):
            if cycle_a != cycle_b and at_b - at_a < interval_of.get(cycle_b, 0):
                v.too_close += 1
    return v


def lag_summary(values: list[float]) -> str:
    if not values:
        return "–"
    return (f"max {max(values) / 1000:.1f} s (p50 {percentile(values, 50) / 1000:.1f} s, "
            f"p95 {percentile(values, 95) / 1000:.1f} s)")


def now() -> datetime:
    return datetime.now(UTC)
