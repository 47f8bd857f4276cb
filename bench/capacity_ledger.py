"""The evidence of a capacity run: which (cycle, group) every post "Telegram" received belongs to,
and the checks computed from the posts and the cycles table (duplicates, early, overlapping).

Delivery rows of a finished cycle are deleted when the config's next cycle is created, so the
harness reads the new rows every few seconds (ids only grow; ids and random ids never change) and
keeps the union; the emulator's record of every accepted post carries its sender, `random_id` and
time, which the ledger maps back to (cycle, chat).
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

# Delivery ids come from one sequence in the tick's transactions; a margin re-reads recent ids in case
# a transaction that took lower ids committed after one that took higher ones. A tick runs two slices
# at once (jobs/tick.py, SLICES_AT_ONCE), committing in either order, so besides the periodic reads the
# harness reads once more after each tick has answered (all its slices committed), far enough back to
# cover every row that tick wrote (`snapshot(margin=…)`). (The fixed margin alone left 1,244 posts of a
# 15,000-account run unattributed.)
_ID_MARGIN = 20_000


class Ledger:
    """random_id -> (cycle id, chat id) of every delivery row seen."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.by_rid: dict[int, tuple[int, int]] = {}
        self._max_id = 0
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()  # the periodic reads and the reads after a tick share the connection

    def snapshot(self, margin: int = _ID_MARGIN) -> None:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=5)
            rows = self._conn.execute(
                "SELECT id, cycle_id, chat_id, random_id FROM deliveries WHERE id > %(after)s",
                {"after": self._max_id - max(margin, _ID_MARGIN)},
            ).fetchall()
            for did, cycle_id, chat_id, rid in rows:
                self.by_rid[int(rid)] = (int(cycle_id), int(chat_id))
                self._max_id = max(self._max_id, int(did))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


@dataclass(frozen=True, slots=True)
class Post:
    chat_id: int
    sender: int
    random_id: int
    at: float


@dataclass(frozen=True, slots=True)
class CycleRow:
    id: int
    owner_id: int
    seq: int
    interval_minutes: int
    scheduled_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: str
    lock_busy: int
    last_continuation: str | None


def read_cycles(database_url: str) -> list[CycleRow]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, owner_id, seq, interval_minutes, scheduled_at, run_at, started_at, finished_at, status,"
            " lock_busy, last_continuation FROM cycles ORDER BY owner_id, seq"
        ).fetchall()
    return [CycleRow(*row) for row in rows]


@dataclass
class Attributed:
    """Posts grouped by the delivery they carried: (cycle, chat) -> post times."""

    per_delivery: dict[tuple[int, int], list[float]]
    unattributed: int

    @property
    def duplicates(self) -> int:
        """(cycle, group) pairs that reached Telegram more than once."""
        return sum(1 for times in self.per_delivery.values() if len(times) > 1)

    def delivered_between(self, start: float, end: float) -> int:
        """Deliveries whose first post fell in [start, end)."""
        return sum(1 for times in self.per_delivery.values() if start <= min(times) < end)

    def cycle_spans(self) -> dict[int, tuple[float, float]]:
        spans: dict[int, tuple[float, float]] = {}
        for (cycle_id, _), times in self.per_delivery.items():
            low, high = spans.get(cycle_id, (min(times), max(times)))
            spans[cycle_id] = (min(low, *times), max(high, *times))
        return spans


def attribute(posts: list[Post], ledger: Ledger) -> Attributed:
    per_delivery: dict[tuple[int, int], list[float]] = defaultdict(list)
    unattributed = 0
    for post in posts:
        found = ledger.by_rid.get(post.random_id)
        if found is None or found[1] != post.chat_id:
            unattributed += 1
            continue
        per_delivery[found].append(post.at)
    return Attributed(dict(per_delivery), unattributed)


@dataclass(frozen=True, slots=True)
class Spacing:
    early: int  # posts of one broadcaster in one group less than the interval after the previous one
    gaps_s: list[float]  # the gaps between such posts, for the later post falling in [start, end)


def spacing(posts: list[Post], interval_s: float, start: float, end: float) -> Spacing:
    by_pair: dict[tuple[int, int], list[float]] = defaultdict(list)
    for post in posts:
        by_pair[(post.sender, post.chat_id)].append(post.at)
    early = 0
    gaps: list[float] = []
    for times in by_pair.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            early += b - a < interval_s
            if start <= b < end:
                gaps.append(b - a)
    return Spacing(early, gaps)


@dataclass(frozen=True, slots=True)
class CycleChecks:
    early: int  # started before the previous scheduled start + interval (or before its own)
    overlapping: int  # started before the previous one finished, or posted before its last post


def cycle_checks(cycles: list[CycleRow], spans: dict[int, tuple[float, float]]) -> CycleChecks:
    by_owner: dict[int, list[CycleRow]] = defaultdict(list)
    for cycle in cycles:
        by_owner[cycle.owner_id].append(cycle)
    early = overlapping = 0
    for owned in by_owner.values():
        owned.sort(key=lambda c: c.seq)
        for prev, cur in itertools.pairwise(owned):
            if cur.started_at is None:
                continue
            allowed = prev.scheduled_at + timedelta(minutes=prev.interval_minutes)
            if cur.started_at < allowed or cur.started_at < cur.scheduled_at:
                early += 1
            db_overlap = prev.finished_at is None or cur.started_at < prev.finished_at
            post_overlap = cur.id in spans and prev.id in spans and spans[cur.id][0] < spans[prev.id][1]
            if db_overlap or post_overlap:
                overlapping += 1
    return CycleChecks(early, overlapping)
