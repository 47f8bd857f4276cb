"""Capacity at Telegram's pace: the real processes with production pacing and Telegram's latency.

Production settings (the defaults of core/settings.py: SEND_PAUSE 1000..2000 ms, BATCH_SIZE 20,
CONT_DELAY 1500 + up to 1500 ms, JITTER_MAX_MS 15000, WORKER_CONCURRENCY 500), the emulator charging
Telegram's costs (connect 300 ms; send log-normal, p50 100 ms, p99 1 s), 20 groups per broadcaster,
real web (uvicorn) serving `/tick` (called by this harness every few seconds, as the platform cron
would), real worker processes, PostgreSQL and Redis, all on this box.

The load is the compressed form of 10,000 broadcasters every 5 minutes: 2,000 every minute has the same
delivery rate (~667/s) and the same number of accounts sending at once (~1,000). The curve runs 10 % and
100 % of it (30 % on request: BENCH_CAPACITY_LEVELS=30); 10 % (200 broadcasters every minute, ~67/s) is
the older bot's target (1,000 broadcasters × 20 groups every 5 minutes) compressed likewise, and runs on
one worker process; 100 % on three. 150 % (1,000 deliveries/s, on four) is the headroom, compressed less:
6,000 broadcasters every 2 minutes, so that a cycle fills a third of its interval rather than most of it
(at one minute, the slowest cycles of a saturated box ran into their next ones and were pushed, which
at production's five minutes cannot happen).

Everything is measured inside a window after a warm-up (the first cycles spread over a minute):
deliveries/s from what the emulator received, start lag and cycle duration from the cycles table,
duplicates per (cycle, group) from the emulator's posts mapped to delivery rows by random_id, early and
overlapping cycles, worker RSS (VmRSS), CPU per process kind (/proc/<pid>/stat), and connects per
delivery (the emulator's connect count). `python -m bench.capacity` runs it alone;
BENCH_CAPACITY_LEVELS=10,30 picks levels, BENCH_CAPACITY_SECONDS sets the 100 % window,
BENCH_PROFILE=1 records py-spy profiles of a worker and of web (30 s of each level's window;
py-spy is not a dependency: `pip install py-spy` into the venv).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import mean
from typing import TypeVar

import httpx
import psycopg
from redis.asyncio import Redis as AsyncRedis

from bench import procs
from bench.capacity_ledger import Ledger, Post, attribute, cycle_checks, read_cycles, spacing
from bench.common import (
    ROOT,
    SESSION_KEY,
    TICK_TOKEN,
    base_env,
    flush_redis,
    flush_telegram,
    free_port,
    fresh_database,
    percentile,
    spawn,
    telegram_redis,
    wait_http,
)
from bench.seed import TG_BASE, chat_id, seed
from core.crypto import SecretBox
from core.settings import Settings
from userbot.fake import FakeTelegram

FULL_LOAD = 2000  # broadcasters at 100 %
GROUPS = 20
SHARED_GROUPS = 2000
INTERVAL_MIN = 1
TICK_EVERY_S = 3
# The compressed form's due window. The default (60 s) exists for a once-a-minute cron and intervals of
# 3 minutes and more; at a 1-minute interval it would select each config while its previous cycle still
# runs. The harness ticks every 3 s, so 5 s is enough to create each cycle before its time.
DUE_WINDOW_S = 5
# Telegram's costs as the emulator charges them: a connect, a send (log-normal), and what an open
# connection costs its worker process (memory; a keep-alive ping a minute and its CPU), the latter as
# measured for the locked Telethon against a real MTProto server (bench/connection_cost.py,
# docs/benchmarks.md "The cost of an open connection").
LATENCY = {"FAKE_CONNECT_MS": "300", "FAKE_SEND_P50_MS": "100", "FAKE_SEND_P99_MS": "1000",
           "FAKE_CONN_KIB": "44", "FAKE_PING_EVERY_S": "60", "FAKE_PING_CPU_MS": "0.7"}
FAKE_PREFIX = "tgcast:fake:"
DATABASE = "tgcast_bench_capacity"
# Production values, taken from the settings' own defaults and passed explicitly, so neither the
# caller's environment nor a developer's .env can change what is measured.
PRODUCTION = ("send_pause_min_ms", "send_pause_max_ms", "batch_size", "cont_delay_ms", "cont_jitter_ms",
              "jitter_max_ms", "claim_ahead_ms", "worker_concurrency", "lease_s", "lock_ttl_s",
              "lock_busy_retries", "client_idle_s", "client_max")
SAMPLE_EVERY_S = 5
# "Sustained": the cycles start on time and none is pushed for running into the next, and the rate is
# within 10 % of the needed one. The 10 % is the compressed form's own shortfall: a group is never posted
# twice less than an interval apart, so every cycle's posts can only move later than the previous cycle's
# (a larger jitter, longer pauses); the same seconds cost 5 times less of a 5-minute interval.
SUSTAINED_SHARE = 0.9
SUSTAINED = "≥ 90 % of the needed rate, start lag p99 ≤ 5 s past the jitter, no cycle pushed for running over"
LEDGER_EVERY_S = 2
PROFILE_S = 30
# What a level costs besides its warm-up and window: database, seeding, start-up, stopping, analysis.
_OVERHEAD_S = 30
# The emulated Telegram's own Redis server (bench/common.py, telegram_redis): on the box, not ours.
TELEGRAM = "emulated telegram"
T = TypeVar("T")


@dataclass(frozen=True)
class Level:
    percent: int
    workers: int
    warmup_s: int
    measure_s: int
    # The shape: the compressed form's unless given (the real shape: bench/real_shape.py).
    interval_min: int = INTERVAL_MIN
    broadcasters: int | None = None  # None: `percent` of FULL_LOAD
    tick_every_s: int = TICK_EVERY_S
    due_window_s: int | None = DUE_WINDOW_S  # None: the default
    spread_s: int = 60  # the first cycles' scheduled starts, spread evenly over this
    name: str = ""

    @property
    def users(self) -> int:
        return self.broadcasters if self.broadcasters is not None else FULL_LOAD * self.percent // 100

    @property
    def needed(self) -> float:
        return self.users * GROUPS / (self.interval_min * 60)

    @property
    def label(self) -> str:
        return self.name or f"{self.percent} %"


def levels() -> list[Level]:
    full_s = int(os.environ.get("BENCH_CAPACITY_SECONDS", "150"))
    # 150 %: the headroom, 6,000 × 20 every 2 minutes (1,000 deliveries/s) on 4 workers: the first cycles spread
    # over one interval (the warm-up), then a window of 50 s (~50,000 deliveries; the starts are spread
    # evenly, so any part of an interval holds the same load), which keeps `make bench` within its budget.
    headroom = Level(HEADROOM, 4, 120, 50, interval_min=2, broadcasters=HEADROOM_BROADCASTERS, spread_s=120,
                     name="150 % (every 2 min)")
    every = [Level(10, 1, 30, 25), Level(100, 3, 45, full_s), headroom]
    chosen = os.environ.get("BENCH_CAPACITY_LEVELS")
    if chosen:
        wanted = {int(p) for p in chosen.split(",")}
        every = [lv for lv in [*every, Level(30, 2, 35, 30)] if lv.percent in wanted]
        every.sort(key=lambda lv: lv.percent)
    return every


HEADROOM = 150
HEADROOM_BROADCASTERS = 6_000
HEADROOM_CPU_MS = 1.6  # what a delivery may cost for 1,000/s to fit this 2-core box with room for the rest


def production_settings() -> dict[str, str]:
    fields = Settings.model_fields
    return {name.upper(): str(fields[name].default) for name in PRODUCTION}


@dataclass
class Result:
    level: Level
    window_s: float
    delivered: int = 0
    lag_ms: list[float] = field(default_factory=list)  # started_at - scheduled_at (includes the jitter)
    lag_past_jitter_ms: list[float] = field(default_factory=list)  # started_at - run_at
    not_started: int = 0
    duration_s: list[float] = field(default_factory=list)
    early_cycles: int = 0
    early_spacing: int = 0
    overlapping: int = 0
    duplicates: int = 0
    unattributed: int = 0
    cycles_multi_batch: float = 0.0  # share of the window's finished cycles that needed a continuation
    lock_busy: int = 0
    in_flight: list[int] = field(default_factory=list)
    connects: int = 0
    transactions: int = 0  # PostgreSQL transactions of this database in the window (statements, mostly)
    first_connects: int = 0
    group_gap_s: list[float] = field(default_factory=list)
    connects_run: int = 0
    delivered_run: int = 0
    peak_per_account: int = 0
    accounts_over_one: int = 0
    worker_rss_peak: float = 0.0
    worker_rss_end: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    box_cpu: float = 0.0
    tick_ms: list[float] = field(default_factory=list)
    tick_enqueued: list[int] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    seed_s: float = 0.0
    profiles: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.delivered / self.window_s

    @property
    def per_delivery(self) -> float:
        return self.connects / self.delivered if self.delivered else float("nan")

    @property
    def cpu_per_delivery_ms(self) -> float:
        """CPU of web, workers, scheduler, PostgreSQL and Redis per delivery (the harness and the emulated
        Telegram's server side left out: neither runs in production)."""
        used = sum(v for k, v in self.cpu.items() if k not in ("harness", TELEGRAM)) / 100 * self.window_s
        return 1000 * used / self.delivered if self.delivered else float("nan")

    def cpu_split_ms(self) -> tuple[float, float, float, float, float]:
        """`cpu_per_delivery_ms` by kind of process: workers (with RQ's scheduler), PostgreSQL, Redis, web;
        then the emulated Telegram's Redis, which `cpu_per_delivery_ms` leaves out."""
        def ms(*kinds: str) -> float:
            return 1000 * sum(self.cpu.get(k, 0.0) for k in kinds) / 100 * self.window_s / self.delivered
        return ms("workers", "rq scheduler"), ms("postgres"), ms("redis"), ms("web"), ms(TELEGRAM)

    @property
    def per_delivery_steady(self) -> float:
        """Without each account's very first connect (those of the warm-up's first cycles)."""
        return (self.connects - self.first_connects) / self.delivered if self.delivered else float("nan")


class _Harness:
    """The processes of one level and the threads that play the cron and watch them."""

    def __init__(self, level: Level, logs: Path) -> None:
        self.level = level
        self.logs = logs
        self.tag = f"capacity{level.name or level.percent}"
        self.database_url = fresh_database(DATABASE)
        flush_redis()
        flush_telegram()
        self.port = free_port()
        shape = {} if level.interval_min >= Settings.model_fields["min_interval_minutes"].default else {
            "MIN_INTERVAL_MINUTES": str(level.interval_min)}
        if level.due_window_s is not None:
            shape["DUE_WINDOW_S"] = str(level.due_window_s)
        env = base_env(self.database_url, BOT_API_BASE="http://127.0.0.1:9/unused",
                       LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
                       FAKE_REDIS_URL=telegram_redis()[0], **shape, **production_settings(), **LATENCY)
        python = sys.executable
        self.web = spawn([python, "-m", "tgcast_cli", "web", "--port", str(self.port)], env,
                         logs / f"{self.tag}-web.log")
        self.workers = [spawn([python, "-m", "tgcast_cli", "worker"], env, logs / f"{self.tag}-worker{i}.log")
                        for i in range(level.workers)]
        self.stop_event = threading.Event()
        self.ledger = Ledger(self.database_url)
        self.measuring = threading.Event()
        self.ticks: list[tuple[float, dict[str, object]]] = []
        self.ticks_sent = 0
        self.rss_samples: list[float] = []
        self.in_flight: list[int] = []
        self.threads: list[threading.Thread] = []

    # ---- threads ----------------------------------------------------------------------------------

    def _ticker(self) -> None:
        headers = {"Authorization": f"Bearer {TICK_TOKEN}"}
        url = f"http://127.0.0.1:{self.port}/tick"
        with httpx.Client(timeout=60) as client, (self.logs / f"{self.tag}-ticks.log").open("w") as out:
            # The first call at once (a cron that has been running all along), then every tick_every_s.
            while True:
                if self.ticks_sent and self.stop_event.wait(self.level.tick_every_s):
                    break
                self.ticks_sent += 1
                try:
                    response = client.post(url, headers=headers)
                except httpx.HTTPError as exc:
                    out.write(f"{time.time():.1f} error {type(exc).__name__}\n")
                    continue
                out.write(f"{time.time():.1f} {response.status_code} {response.text.strip()}\n")
                if response.status_code == 200:
                    body = response.json()
                    self.ticks.append((time.time(), body))
                    # Every slice of this tick has committed: read back over all the rows it wrote, which
                    # may have lower ids than rows already read (bench/capacity_ledger.py).
                    with contextlib.suppress(psycopg.Error):
                        self.ledger.snapshot(margin=2 * GROUPS * int(body.get("enqueued", 0)) + 1)

    def _ledger(self) -> None:
        while not self.stop_event.wait(LEDGER_EVERY_S):
            try:
                self.ledger.snapshot()
            except psycopg.Error:
                pass  # the next round reads what this one missed: rows are never reused

    def _sampler(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stop_event.wait(SAMPLE_EVERY_S):
                if not self.measuring.is_set():
                    continue
                self.rss_samples.append(sum(procs.rss_mib(pid) for pid in self.worker_pids()))
                row = conn.execute(
                    "SELECT count(*) FROM cycles WHERE status = 'running' AND started_at IS NOT NULL"
                ).fetchone()
                self.in_flight.append(int(row[0]) if row else 0)

    # ---- processes --------------------------------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Every worker process with its children (RQ's scheduler runs in a child of one of them)."""
        pids = []
        for worker in self.workers:
            pids += [worker.pid, *procs.children(worker.pid)]
        return pids

    def kinds(self) -> dict[str, list[int]]:
        scheduler = [pid for w in self.workers for pid in procs.children(w.pid)]
        return {
            "web": [self.web.pid, *procs.children(self.web.pid)],
            "workers": [w.pid for w in self.workers],
            "rq scheduler": scheduler,
            "postgres": procs.postgres_pids(DATABASE),
            "redis": [pid for pid in procs.redis_pids() if pid != telegram_redis()[1]],
            TELEGRAM: [pid for pid in [telegram_redis()[1]] if pid is not None],
            "harness": [os.getpid()],
        }

    def start(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/health")
        for target in (self._ticker, self._ledger, self._sampler):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def halt(self) -> None:
        """Stop the cron and the processes: the window is over, nothing left running matters any more.
        Workers get RQ's cold shutdown (a second SIGTERM), then SIGKILL; their children go with them."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=5)  # daemons: a tick still under way is simply not waited for
        everyone = [self.web, *self.workers]
        kids = [pid for p in everyone for pid in procs.children(p.pid)]
        for proc in everyone:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        time.sleep(1.2)  # RQ ignores a second signal within a second of the first
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in everyone:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in kids:
            if procs.cpu_seconds(pid) is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _emulator(query: Callable[[FakeTelegram], Awaitable[T]]) -> T:
    """Run `query(FakeTelegram)` against the emulator's Redis."""

    async def go() -> T:
        redis = AsyncRedis.from_url(telegram_redis()[0])
        try:
            return await query(FakeTelegram(redis, prefix=FAKE_PREFIX))
        finally:
            await redis.aclose()

    return asyncio.run(go())


def _transactions(database_url: str) -> int:
    """Committed + rolled back transactions of the database so far (each autocommit statement is one;
    PostgreSQL publishes them within a second or so)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _per_account_connects(users: int) -> list[int]:
    uids = [TG_BASE + i for i in range(users)]
    return _emulator(lambda net: asyncio.gather(*(net.connect_count(u) for u in uids)))


async def _posts(net: FakeTelegram) -> list[Post]:
    lists = await asyncio.gather(*(net.posted(chat_id(g)) for g in range(SHARED_GROUPS)))
    return [Post(p.chat_id, p.from_tg_user_id, p.random_id, p.at) for posted in lists for p in posted]


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(PROFILE_S), "--rate", "100",
                             "--format", "raw", "--threads", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _statements_reset(database_url: str) -> bool:
    """Start counting PostgreSQL's statements (pg_stat_statements, where the server preloads it)."""
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
        return True
    except psycopg.Error:
        return False


def _statements_dump(database_url: str, out: Path, deliveries: int) -> None:
    """The statements that took PostgreSQL's time since the reset, per delivery, most first."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT calls, total_exec_time, rows, shared_blks_hit + shared_blks_read, query"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY total_exec_time DESC LIMIT 40"
        ).fetchall()
    per = max(deliveries, 1)
    lines = [f"deliveries {deliveries}", "calls/delivery  exec ms/delivery  ms/call  rows/call  blocks/call  query"]
    for calls, total, nrows, blocks, query in rows:
        q = " ".join(str(query).split())[:160]
        lines.append(f"{calls / per:8.4f}  {total / per:8.4f}  {total / max(calls, 1):8.3f}  "
                     f"{nrows / max(calls, 1):8.1f}  {blocks / max(calls, 1):8.1f}  {q}")
    out.write_text("\n".join(lines) + "\n")


def run_level(level: Level, logs: Path) -> Result:
    h = _Harness(level, logs)
    result = Result(level, float(level.measure_s))
    users = level.users
    try:
        seeded = time.monotonic()
        start_at = datetime.now(UTC) + timedelta(seconds=5)
        seed(h.database_url, telegram_redis()[0], users=users, groups_per_user=GROUPS,
             interval_minutes=level.interval_min, box=SecretBox([SESSION_KEY]), start_at=start_at,
             spread_s=level.spread_s, shared_groups=SHARED_GROUPS)
        result.seed_s = time.monotonic() - seeded
        h.start()
        time.sleep(max(0.0, (start_at - datetime.now(UTC)).total_seconds()) + level.warmup_s)
        w0 = datetime.now(UTC)
        connects0 = _emulator(lambda net: net.connect_total())
        per_account0 = _per_account_connects(users)
        cpu0 = procs.CpuSnapshot.take(h.kinds())
        xacts0 = _transactions(h.database_url)
        h.measuring.set()
        spies: list[tuple[subprocess.Popen[bytes], Path]] = []
        statements = bool(os.environ.get("BENCH_PROFILE")) and _statements_reset(h.database_url)
        if os.environ.get("BENCH_PROFILE"):
            for pid, name in ((h.workers[0].pid, "worker0"), (h.web.pid, "web")):
                out = logs / f"{h.tag}-{name}.pyspy.txt"
                spy = _profile(pid, out)
                if spy is not None:
                    spies.append((spy, out))
        time.sleep(level.measure_s)
        cpu1 = procs.CpuSnapshot.take(h.kinds())
        xacts1 = _transactions(h.database_url)
        connects1 = _emulator(lambda net: net.connect_total())
        per_account1 = _per_account_connects(users)
        # Read before the processes stop: a worker killed at the end never closes its connections, so
        # an account connected afterwards by a worker still finishing would count as open twice.
        uids = [TG_BASE + i for i in range(users)]
        peaks: list[int] = _emulator(lambda net: asyncio.gather(*(net.peak_connections(u) for u in uids)))
        w1 = datetime.now(UTC)
        result.window_s = (w1 - w0).total_seconds()
        result.worker_rss_end = [procs.rss_mib(pid) for pid in h.worker_pids()]
        result.cpu = procs.cpu_percent(cpu0, cpu1, result.window_s)
        result.box_cpu = procs.box_percent(cpu0, cpu1)
        result.connects = connects1 - connects0
        result.transactions = xacts1 - xacts0
        result.connects_run = connects1
        for spy, out in spies:
            spy.wait(timeout=PROFILE_S + 30)
            result.profiles.append(str(out))
    finally:
        h.halt()
    h.ledger.snapshot()
    h.ledger.close()
    posts: list[Post] = _emulator(_posts)
    cycles = read_cycles(h.database_url)

    attributed = attribute(posts, h.ledger)
    result.delivered = attributed.delivered_between(w0.timestamp(), w1.timestamp())
    if statements:
        out = logs / f"{h.tag}-statements.txt"
        _statements_dump(h.database_url, out, result.delivered)
        result.profiles.append(str(out))
    result.delivered_run = len(attributed.per_delivery)
    result.duplicates = attributed.duplicates
    result.unattributed = attributed.unattributed
    spaced = spacing(posts, level.interval_min * 60, w0.timestamp(), w1.timestamp())
    result.early_spacing, result.group_gap_s = spaced.early, spaced.gaps_s
    checks = cycle_checks(cycles, attributed.cycle_spans())
    result.early_cycles, result.overlapping = checks.early, checks.overlapping
    lag_until = w1 - timedelta(seconds=5)
    for c in cycles:
        if w0 <= c.run_at < lag_until:
            started = c.started_at or w1  # not started by the end: at least this late
            result.not_started += c.started_at is None
            result.lag_ms.append((started - c.scheduled_at).total_seconds() * 1000)
            result.lag_past_jitter_ms.append((started - c.run_at).total_seconds() * 1000)
    finished = [c for c in cycles if c.finished_at is not None and c.started_at is not None
                and w0 <= c.finished_at < w1]
    result.duration_s = [(c.finished_at - c.started_at).total_seconds() for c in finished]  # type: ignore[operator]
    if finished:
        result.cycles_multi_batch = sum(1 for c in finished if c.last_continuation) / len(finished)
    result.lock_busy = sum(c.lock_busy for c in cycles)
    # An account's first batch connects wherever it runs; the warm-up is shorter than the spread of first
    # cycles (60 s + 15 s of jitter), so some of those connects fall in the window.
    result.first_connects = sum(1 for before, after in zip(per_account0, per_account1, strict=True)
                                if before == 0 and after > 0)
    result.in_flight = h.in_flight
    result.peak_per_account = max(peaks, default=0)
    result.accounts_over_one = sum(1 for p in peaks if p > 1)
    result.worker_rss_peak = max(h.rss_samples, default=sum(result.worker_rss_end))
    for at, body in h.ticks:
        if w0.timestamp() <= at < w1.timestamp():
            result.tick_ms.append(float(body.get("duration_ms", 0)))  # type: ignore[arg-type]
            result.tick_enqueued.append(int(body.get("enqueued", 0)))  # type: ignore[call-overload]
            skipped = body.get("skipped", {})
            result.skipped.update(skipped if isinstance(skipped, dict) else {})
    return result


# ---- the report -----------------------------------------------------------------------------------


def _pcts(values: list[float], scale: float = 1.0, digits: int = 1, ps: tuple[int, ...] = (50, 95, 99)) -> str:
    if not values:
        return "–"
    return " / ".join(f"{percentile(values, p) * scale:.{digits}f}" for p in ps)


def _cpu(r: Result) -> str:
    order = ["workers", "rq scheduler", "web", "postgres", "redis", "harness", TELEGRAM]
    parts = [f"{k} {r.cpu.get(k, 0):.0f}" for k in order]
    ours = sum(r.cpu.values())
    others = max(0.0, r.box_cpu - ours)
    return ", ".join(parts) + f"; box {r.box_cpu:.0f} of 200, other users of the box {others:.0f}"


def level_table(results: list[Result]) -> str:
    head = "| measurement | " + " | ".join(r.level.label for r in results) + " |"
    rows = [head, "|---|" + "---|" * len(results)]

    def row(name: str, cells: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(cells) + " |")

    row("broadcasters × groups, every", [f"{r.level.users:,} × {GROUPS}, {r.level.interval_min} min" for r in results])
    row("worker processes (batches each at most)",
        [f"{r.level.workers} ({production_settings()['WORKER_CONCURRENCY']})" for r in results])
    row("window after warm-up (s)", [f"{r.window_s:.0f} after {r.level.warmup_s}" for r in results])
    row("deliveries/s: achieved / needed", [f"**{r.rate:.0f}** / {r.level.needed:.0f} ({r.rate / r.level.needed:.0%})"
                                            for r in results])
    row("one broadcaster's consecutive posts in one group: mean gap (s)",
        [f"{mean(r.group_gap_s):.1f}" if r.group_gap_s else "–" for r in results])
    row("accounts sending at once (mean of samples)",
        [f"{mean(r.in_flight):.0f}" if r.in_flight else "–" for r in results])
    row("start lag p50 / p95 / p99 (s): started − scheduled, includes the 0–15 s jitter",
        [_pcts(r.lag_ms, 1 / 1000) for r in results])
    row("start lag past the jittered time p50 / p95 / p99 (s): started − run_at",
        [_pcts(r.lag_past_jitter_ms, 1 / 1000) + (f" ({r.not_started} not started)" if r.not_started else "")
         for r in results])
    row("cycle duration p50 / p95 (s): finished − started",
        [_pcts(r.duration_s, ps=(50, 95)) for r in results])
    row("cycles that needed more than one batch", [f"{r.cycles_multi_batch:.0%}" for r in results])
    row("early (cycles / group posts < interval apart)", [f"{r.early_cycles} / {r.early_spacing}" for r in results])
    row("overlapping cycles", [str(r.overlapping) for r in results])
    row("duplicates per (cycle, group) (posts not attributable)",
        [f"{r.duplicates} ({r.unattributed})" for r in results])
    row("connects per delivery in the window: without accounts' first connect (all)",
        [f"{r.per_delivery_steady:.3f} ({r.per_delivery:.3f}: {r.connects:,} connects, {r.first_connects:,} first, "
         f"{r.delivered:,} deliveries)" for r in results])
    row("most connections of one account open at once (until the window's end)",
        [f"{r.peak_per_account}" + (f" ({r.accounts_over_one} accounts > 1)" if r.accounts_over_one else "")
         for r in results])
    row("total worker RSS, peak (MiB; each process at the end)",
        [f"{r.worker_rss_peak:.0f} ({', '.join(f'{m:.0f}' for m in r.worker_rss_end)})" for r in results])
    row("CPU, % of one core (the box has 2)", [_cpu(r) for r in results])
    row("PostgreSQL transactions per delivery (web, workers and harness; in the window)",
        [f"{r.transactions / r.delivered:.1f}" if r.delivered else "–" for r in results])
    row("CPU per delivery, our processes (ms); deliveries/s 2 cores would carry at that cost",
        [f"{r.cpu_per_delivery_ms:.1f}; {2000 / r.cpu_per_delivery_ms:,.0f}" if r.delivered else "–"
         for r in results])
    row("CPU per delivery by process (ms): workers (with RQ's scheduler) / PostgreSQL / Redis / web "
        "(not counted: the emulated Telegram's own Redis)",
        [" / ".join(f"{v:.2f}" for v in r.cpu_split_ms()[:4]) + f" ({r.cpu_split_ms()[4]:.2f})" if r.delivered
         else "–" for r in results])
    row("/tick: median ms; skipped in the window",
        [f"{percentile(r.tick_ms, 50):.0f}; " + (", ".join(f"{k} {v}" for k, v in sorted(r.skipped.items())) or "none")
         for r in results])
    row("account lock busy (whole run)", [str(r.lock_busy) for r in results])
    return "\n".join(rows)


def goals(results: list[Result]) -> str:
    by = {r.level.percent: r for r in results}
    full, old = by.get(100), by.get(10)
    lines = ["| goal | result | verdict | what limits it (when missed) |", "|---|---|---|---|"]

    def goal(name: str, ok: bool | None, evidence: str, limit: str = "") -> None:
        verdict = "not run" if ok is None else ("PASS" if ok else "**MISS**")
        lines.append(f"| {name} | {evidence} | {verdict} | {limit if ok is False else ''} |")

    def sustained(r: Result) -> bool:
        return (r.rate >= SUSTAINED_SHARE * r.level.needed and percentile(r.lag_past_jitter_ms, 99) <= 5000
                and not r.skipped.get("previous_cycle_running"))

    if full is not None:
        goal(f"full load sustained with ≤ 4 workers ({SUSTAINED})",
             sustained(full) and full.level.workers <= 4,
             f"{full.rate:.0f} of {full.level.needed:.0f}/s with {full.level.workers} workers", _limits(full))
        p99 = percentile(full.lag_past_jitter_ms, 99) / 1000
        goal("start lag p99 ≤ 5 s (at full load; judged past the deliberate 0–15 s jitter)", p99 <= 5,
             f"{p99:.1f} s past the jittered time; {percentile(full.lag_ms, 99) / 1000:.1f} s after the scheduled "
             "time, jitter included", _limits(full))
        goal("total worker RSS ≤ 1.5 GiB (at full load)", full.worker_rss_peak <= 1536,
             f"{full.worker_rss_peak:.0f} MiB peak over {full.level.workers} workers and RQ's scheduler",
             "see the notes below")
        goal("connects per delivery ≤ 0.05 (at full load; accounts' first connects left out)",
             full.per_delivery_steady <= 0.05,
             f"{full.per_delivery_steady:.3f} ({full.per_delivery:.3f} with the first connects of the warm-up)",
             "an account's batches land on any worker, and a worker takes the account's connection over from the "
             "one holding it (connection claims)")
    else:
        for name in ("full load sustained with ≤ 4 workers", "start lag p99 ≤ 5 s", "total worker RSS ≤ 1.5 GiB",
                     "connects per delivery ≤ 0.05"):
            goal(name, None, "–")
    bad = [(r.level.percent, r.early_cycles + r.early_spacing, r.overlapping, r.duplicates + r.unattributed)
           for r in results]
    goal("0 early, 0 overlapping, 0 duplicates (every level)", all(b[1:] == (0, 0, 0) for b in bad),
         "; ".join(f"{p} %: {e} / {o} / {d}" for p, e, o, d in bad))
    doubled = [(r.level.percent, r.peak_per_account, r.accounts_over_one) for r in results]
    goal("one connection per account at a time (Telegram ends a session used twice at once)",
         all(peak <= 1 for _, peak, _ in doubled),
         "; ".join(f"{p} %: at most {peak}" + (f" ({n} accounts above 1)" if n else "") for p, peak, n in doubled),
         "connection claims lapsed while their connections were open (see the notes below)")
    head = by.get(HEADROOM)
    if head is not None:
        head_p99 = percentile(head.lag_past_jitter_ms, 99) / 1000
        goal(f"headroom: 1,000 deliveries/s ({HEADROOM} %) sustained with ≤ 4 workers, ≤ {HEADROOM_CPU_MS} ms of CPU "
             "per delivery", sustained(head) and head.cpu_per_delivery_ms <= HEADROOM_CPU_MS,
             f"{head.rate:.0f} of {head.level.needed:.0f}/s, lag p99 {head_p99:.1f} s past the jitter, "
             f"{head.cpu_per_delivery_ms:.2f} ms per delivery", _limits(head))
    if old is not None:
        goal("older bot's target on one worker: 200 × 20 every minute (= 1,000 every 5 minutes, ~67/s)",
             sustained(old) and old.level.workers == 1,
             f"{old.rate:.0f} of {old.level.needed:.0f}/s on {old.level.workers} worker, lag p99 "
             f"{percentile(old.lag_past_jitter_ms, 99) / 1000:.1f} s past the jitter", _limits(old))
    else:
        goal("older bot's target on one worker", None, "–")
    return "\n".join(lines)


def _limits(r: Result) -> str:
    """The evidence this run has on what held a level back; the notes below interpret it."""
    ours = sum(r.cpu.values())
    found = []
    if r.box_cpu >= 180:
        found.append(f"the box's CPU: {r.box_cpu:.0f} of 200 % busy ({ours:.0f} this benchmark's processes, "
                     f"{max(0.0, r.box_cpu - ours):.0f} other users)")
    tick_ms = percentile(r.tick_ms, 50) if r.tick_ms else 0.0
    if tick_ms > r.level.tick_every_s * 1000:
        found.append(f"/tick: {tick_ms / 1000:.1f} s per call (median), so cycles are created late")
    if r.skipped.get("previous_cycle_running"):
        found.append(f"{r.skipped['previous_cycle_running']} cycles pushed a whole interval for running over")
    if r.duration_s and percentile(r.duration_s, 95) > 45:
        found.append(f"cycles last {percentile(r.duration_s, 95):.0f} s (p95) against ~32 s of pacing")
    if r.rate < SUSTAINED_SHARE * r.level.needed and not found:
        found.append(f"the compressed form's spacing shortfall (mean gap per group {mean(r.group_gap_s):.1f} s)"
                     if r.group_gap_s else "see the notes below")
    return "; ".join(found) or "see the notes below"


def section(results: list[Result], seconds: float) -> str:
    settings = ", ".join(f"{k} {v}" for k, v in production_settings().items())
    latency = ", ".join(f"{k} {v}" for k, v in LATENCY.items())
    return (
        "## Capacity at Telegram's pace\n\n"
        "Unlike the machinery rows above, these runs pace every account as production does and the emulator "
        "charges Telegram's costs. Real web (uvicorn) serving `/tick` (called by the harness every "
        f"{TICK_EVERY_S} s, as the platform cron would), real worker processes, PostgreSQL and Redis, all on "
        f"this 2-core box ({seconds:.0f} s for the {len(results)} runs).\n\n"
        f"- Production settings, the defaults: {settings}. The deterministic start jitter (JITTER_MAX_MS 15000) "
        "is kept: it spreads starts on purpose, so `started − scheduled` includes 0–15 s of it; the lag past "
        "the jittered time (`started − run_at`) is what the scheduler and workers add.\n"
        f"- Emulated Telegram: {latency} (log-normal sends, awaited); {GROUPS} groups per broadcaster.\n"
        "- **Compressed form.** 10,000 broadcasters every 5 minutes is run as 2,000 every minute: the same "
        "delivery rate (~667/s) and the same number of accounts sending at once (~1,000). 100 % = 2,000 × 20 "
        "every minute. The older bot's target (1,000 × 20 every 5 minutes, ~67/s) is run as 200 every minute: "
        "the 10 % level, on one worker process. 150 % (1,000 deliveries/s, 4 workers) is the headroom, compressed "
        f"less: {HEADROOM_BROADCASTERS:,} × 20 every 2 minutes. What the compression changes: a cycle (20 sends "
        "1–2 s apart after up to 15 s of jitter, ~45 s) fills most of a 1-minute interval (a third of 2 minutes) "
        f"instead of a sixth of 5 minutes, so the due window is {DUE_WINDOW_S} s here (the default 60 s would "
        "find the previous cycle still running), and on a saturated box the slowest cycles of a 1-minute "
        "interval run into their next ones; the rate and the concurrency are the production ones.\n"
        "- Measured in a window after a warm-up: deliveries/s from what the emulator received (first post of "
        "each (cycle, group) in the window); start lag for cycles whose jittered time falls in the window; "
        "duration for cycles finished in it; duplicates counted per (cycle, group) from the emulator's posts "
        "mapped to delivery rows by `random_id` (over the whole run); early = a cycle started before the "
        "previous scheduled start + interval, or one broadcaster's posts in one group less than the interval "
        "apart; overlapping = a cycle started before the previous one finished or posted before its last post; "
        "RSS = VmRSS of every worker process and RQ's scheduler child; CPU from /proc/<pid>/stat over the "
        "window (PostgreSQL: the server's own processes and this database's backends; Redis is the box's "
        "server, shared). The emulated Telegram keeps its side (memberships, slow mode, random ids, the posts) "
        "in a Redis server of its own, started by the benchmark: that work is Telegram's servers' in "
        "production, so it is reported apart and left out of the CPU per delivery; it still runs on the box's "
        "two cores. The emulator's client side (a script call and a check per send, the charged memory and "
        "keep-alive) runs inside the workers and is counted with them, standing in for Telethon's own work.\n\n"
        f"{level_table(results)}\n\n### Goals\n\n{goals(results)}\n"
    )


def _fit(level: Level, after: float = 0.0) -> Level:
    """`make bench` has a time budget (BENCH_DEADLINE, unix time, set by bench/__main__.py); the count-based
    parts before this one take longer on a box others are using, so the longest level's window gives way,
    down to a minute, leaving `after` seconds to the levels after it."""
    deadline = os.environ.get("BENCH_DEADLINE")
    if not deadline:
        return level
    room = float(deadline) - time.time() - after - (level.warmup_s + _OVERHEAD_S)
    return replace(level, measure_s=int(max(60, min(level.measure_s, room))))


def run(logs: Path) -> str:
    started = time.monotonic()
    results = []
    chosen = levels()
    for n, level in enumerate(chosen):
        if level.percent == 100:
            level = _fit(level, after=sum(lv.warmup_s + lv.measure_s + _OVERHEAD_S for lv in chosen[n + 1:]))
        print(f"bench: capacity {level.percent} % ({level.users} broadcasters, {level.workers} workers, "
              f"{level.measure_s} s window) …", file=sys.stderr, flush=True)
        level_started = time.monotonic()
        results.append(run_level(level, logs))
        print(f"bench: capacity {level.percent} % done in {time.monotonic() - level_started:.0f} s",
              file=sys.stderr, flush=True)
    return section(results, time.monotonic() - started)


if __name__ == "__main__":
    print(run(ROOT / "artifacts" / "bench"))
