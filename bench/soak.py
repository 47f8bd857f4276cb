"""Soak: the broadcast runtime under faults, through the real processes (docs/runtime.md,
"Invariants"; results in docs/reliability.md, "Soak").

A few hundred broadcasters × a few groups at a 1-minute interval run for several minutes through a
real `tgcast web` (serving /tick and the webhook), real `tgcast worker` processes and a ticker, on a
PRIVATE PostgreSQL and two PRIVATE Redis servers (the service's, and the emulated Telegram's, so
flushing the first does not erase "Telegram"). Meanwhile, at random points, the harness
(a) SIGKILLs a worker and starts a new one, (b) flushes the service's Redis, (c) restarts PostgreSQL,
(d) redelivers webhook updates; and on a fixed timeline (bench/soak_outages.py) it stops Redis for 45 s
(data kept) and for 120 s (back empty), stops PostgreSQL for 60 s, freezes a worker for 40 s and has
"Telegram" stop answering one account for 3 minutes. Then the faults stop, the run settles (lease + retries, still
ticking), and the table is computed from the database, the delivery ledger and what the emulator
accepted. Exit status 1 on any duplicate, loss, early or overlapping cycle, an account's session open
twice at once, or a post re-sent after "Telegram" forgot its random_id.

    python -m bench.soak [--minutes 8] [--broadcasters 300] [--groups 5] [--workers 3] [--doc]
"""

from __future__ import annotations

import argparse
import itertools
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from bench.common import BOT_TOKEN, ROOT, SESSION_KEY, TICK_TOKEN, WEBHOOK_SECRET, free_port, spawn, stop, wait_http
from bench.seed import TG_BASE, USER_BASE, seed
from bench.soak_ledger import (
    Ledger,
    Post,
    Verdict,
    judge,
    lag_summary,
    read_cycles,
    read_peak_times,
    read_peaks,
    read_posts,
)
from bench.soak_outages import (
    OutageLog,
    Planned,
    freeze_for,
    hang_account,
    plan_for,
    process_died,
    stop_postgres_for,
    stop_redis_for,
    wait_for_a_post,
)
from bench.soak_services import PrivatePostgres, PrivateRedis
from core.crypto import SecretBox

# The lease keeps production's proportion to the request bound (REQUEST_TIMEOUT_S + 5 s fits in a
# quarter of it: 25 of 120 there, 10 of 40 here), so a hung request cannot outlive its lease.
LEASE_S = 40
# A pause of at least 100 ms turns on the sent records' group commit (a 50 ms linger, as in
# production), so PostgreSQL going away finds records waiting.
TUNING = {
    "MIN_INTERVAL_MINUTES": "1", "JITTER_MAX_MS": "3000", "SEND_PAUSE_MIN_MS": "100", "SEND_PAUSE_MAX_MS": "150",
    "LEASE_S": str(LEASE_S), "LOCK_TTL_S": "10", "CONT_DELAY_MS": "500", "CONT_JITTER_MS": "500",
    "RETRY_BASE_MS": "1000", "RETRY_MAX_MS": "10000", "REQUEST_TIMEOUT_S": "5",
    # Telegram promises no duration for its de-duplication: a resend a whole interval later must not
    # rely on it, so the emulator forgets a random_id after one interval.
    "FAKE_RANDOM_ID_TTL_S": "60",
}
FAKE_PREFIX = "tgcast:fake:"
SETTLE_MAX_S = LEASE_S + 150  # lease + retries + a tick or two + a cycle's own duration


@dataclass
class Faults:
    kills: int = 0
    flushes: int = 0
    pg_restarts: int = 0
    pg_down_s: float = 0.0
    redeliveries: int = 0
    webhook_5xx: int = 0
    webhook_5xx_at: list[float] = field(default_factory=list)
    webhook_5xx_outside_outages: int = 0
    webhook_other: int = 0
    handled_again_after_flush: int = 0
    handled_twice_without_flush: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    health_503_s: int = 0
    health_polls: int = 0
    outages_seen_503: int = 0
    recovery_s: list[float] = field(default_factory=list)  # PostgreSQL back → /health 200 again
    tick_ok: int = 0
    tick_failed: int = 0
    outages: OutageLog = field(default_factory=OutageLog)
    posts_while_pg_stopped: int = 0  # accepted by "Telegram" while the 60 s stop's records had to wait
    pg_stop_on_post: bool | None = None  # the 60 s stop began right after a post (None: not run)
    hung_posts: int = 0  # posts of the hung account accepted while it went unanswered
    hung_sent_recorded: int = 0  # of those, recorded sent (a repeat answered after the hang)
    gave_up_starting: int = 0  # started just before a long outage, exited at start-up (restarted after)
    connections_closed_by_exit: int = 0  # left open by a worker that died, closed as its sockets went


class Soak:
    def __init__(self, args: argparse.Namespace, logs: Path) -> None:
        self.args = args
        self.logs = logs
        self.faults = Faults()
        self.rng = random.Random(args.seed)
        self.stop_faults = threading.Event()
        self.stop_all = threading.Event()
        self.pg_down = threading.Event()
        self.flush_times: list[float] = []
        self.health: list[tuple[float, int]] = []
        self.outages: list[tuple[float, float]] = []  # (stopped at, started again at)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.log_of: dict[int, Path] = {}
        self.kill_times: list[float] = []
        self.worker_no = itertools.count()
        self.lock = threading.Lock()
        self.witness: subprocess.Popen[bytes] | None = None
        self.witness_alive = False
        # One outage of a service at a time: the random flushes and restarts wait for a long stop, and
        # no worker is killed or started while one lasts (a worker started into a 2-minute outage gives
        # up after STARTUP_WAIT_S, which a platform would meet with restarts; what is judged here is
        # whether the running ones ride it out).
        self.service_busy = threading.Lock()  # one service away at a time: each outage's effects its own
        self.long_outage = threading.Event()
        self.fault_start = 0.0

    # ---- processes ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("BOT_", "DATABASE", "REDIS", "FAKE_", "TEST_", "TICK_", "WEBHOOK_"))}
        env.update(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis.url, FAKE_REDIS_URL=self.fake_redis.url,
            SESSION_KEYS=SESSION_KEY, TICK_TOKEN=TICK_TOKEN, WEBHOOK_SECRET=WEBHOOK_SECRET, BOT_TOKEN=BOT_TOKEN,
            BOT_API_BASE=f"http://127.0.0.1:{self.api_port}", GATEWAY="fake", LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT), **TUNING,
        )
        return env

    def start_worker(self) -> None:
        n = next(self.worker_no)
        log = self.logs / f"worker{n}.log"
        proc = spawn([sys.executable, "-m", "tgcast_cli", "worker"], self.env(), log)
        with self.lock:
            self.workers.append(proc)
            self.log_of[proc.pid] = log

    def gave_up_starting(self, proc: subprocess.Popen[bytes]) -> bool:
        """A worker started just before a long outage, which gave up waiting for Redis or PostgreSQL at
        start (STARTUP_WAIT_S, exit 2): what the start-up check is for, not a worker dying in service."""
        log = self.log_of.get(proc.pid)
        if proc.returncode != 2 or log is None or not log.exists():
            return False
        lines = log.read_text(errors="replace").strip().splitlines()
        return bool(lines) and lines[-1].startswith("tgcast: cannot reach")

    def gone(self, proc: subprocess.Popen[bytes]) -> None:
        """A worker process ended (killed or not): its sockets closed with it, so "Telegram" sees its
        connections end (the emulator only counts what the process told it)."""
        try:
            self.faults.connections_closed_by_exit += process_died(self.fake_redis.url, FAKE_PREFIX, proc.pid)
        except Exception as exc:  # the emulator's Redis is never taken away: say so if it was anyway
            print(f"soak: could not close the connections of pid {proc.pid}: {exc}", flush=True)

    # ---- fault threads -------------------------------------------------------------------------------

    def killer(self) -> None:
        fault_s = self.args.minutes * 60
        mean = min(5.5, fault_s / 60)  # at least 50 kills over the default run
        while not self.stop_faults.wait(self.rng.uniform(0.4 * mean, 1.6 * mean)):
            while self.long_outage.is_set() and not self.stop_faults.wait(1.0):
                pass
            if self.stop_faults.is_set():
                break
            with self.lock:
                # The witness (first worker) is never killed: it must live through every flush and
                # restart and still carry the settle phase alone.
                alive = [w for w in self.workers if w.poll() is None and w is not self.witness]
                victim = self.rng.choice(alive) if alive else None
                # Out of the list before the signal: the watchdog must not take its death for an
                # exit of its own.
                if victim is not None:
                    self.workers.remove(victim)
            if victim is not None:
                victim.send_signal(signal.SIGKILL)
                self.kill_times.append(time.time())
                victim.wait()
                self.gone(victim)
                self.faults.kills += 1
            self.start_worker()

    def watchdog(self) -> None:
        """A worker that exits without being killed is a defect (it must survive Redis and PostgreSQL
        outages); it is recorded, then replaced so the run goes on."""
        while not self.stop_all.wait(1.0):
            with self.lock:
                dead = [w for w in self.workers if w.poll() is not None]
                for w in dead:
                    self.workers.remove(w)
            for w in dead:
                self.gone(w)
                if self.gave_up_starting(w):
                    self.faults.gave_up_starting += 1
                else:
                    self.faults.unexpected_exits.append(f"worker pid {w.pid} exit {w.returncode}")
                # As a platform would restart it, but not into the outage it just gave up on.
                while self.long_outage.is_set() and not self.stop_all.wait(1.0):
                    pass
                self.start_worker()
            if self.web.poll() is not None and "web" not in self.faults.unexpected_exits:
                self.faults.unexpected_exits.append("web")

    def flusher(self) -> None:
        while not self.stop_faults.wait(self.rng.uniform(40, 80)):
            with self.service_busy:
                self.redis.flushall()
                self.flush_times.append(time.time())
                self.faults.flushes += 1

    def pg_restarter(self) -> None:
        while not self.stop_faults.wait(self.rng.uniform(45, 80)):
            with self.service_busy:
                self.pg_down.set()
                stopped, started = stop_postgres_for(self.pg, self.rng.uniform(4, 8))
                self.pg_down.clear()
                self.outages.append((stopped, started))
                self.faults.pg_restarts += 1
                self.faults.pg_down_s += started - stopped

    def outager(self, plan: list[Planned]) -> None:
        """The long outages, one after another at their planned times (bench/soak_outages.py)."""
        begun = time.monotonic()
        log = self.faults.outages
        for planned in plan:
            if self.stop_faults.wait(max(0.0, begun + planned.at_s - time.monotonic())):
                return
            print(f"soak: {planned.kind} for {planned.seconds:g} s", flush=True)
            if planned.kind == "hang":
                # An account that surely broadcasts (every seeded one does), drawn from the run's seed.
                tg_user_id = TG_BASE + self.rng.randrange(self.args.broadcasters)
                log.hangs.append((tg_user_id, *hang_account(self.fake_redis.url, FAKE_PREFIX, tg_user_id,
                                                            planned.seconds)))
            elif planned.kind == "freeze":
                # The witness: it is never killed, so the SIGCONT surely comes, and it has to carry the
                # settle alone afterwards.
                assert self.witness is not None
                log.freezes.append((self.witness.pid, *freeze_for(self.witness, planned.seconds, self.stop_all)))
            elif planned.kind == "postgres":
                with self.service_busy:
                    # On traffic, not on the clock: stopped the moment a post is accepted, its record
                    # is still waiting in the group commit (at most a minute's wait for one).
                    self.faults.pg_stop_on_post = wait_for_a_post(self.fake_redis.url, FAKE_PREFIX, 60)
                    self.long_outage.set()
                    self.pg_down.set()
                    log.postgres.append(stop_postgres_for(self.pg, planned.seconds))
                    self.pg_down.clear()
                    self.long_outage.clear()
            else:
                keep = planned.kind == "redis-kept"
                with self.service_busy:
                    self.long_outage.set()
                    stopped, started = stop_redis_for(self.redis, planned.seconds, keep_data=keep)
                    if not keep:
                        self.flush_times.append(started)  # back empty: de-duplication records are gone
                    log.redis.append((stopped, started, keep))
                    self.long_outage.clear()

    def redeliverer(self) -> None:
        """Idempotent updates only (/id): after a Redis flush the de-duplication record is gone, so
        a redelivery may rightly be handled again."""
        url = f"http://127.0.0.1:{self.web_port}/telegram/webhook"
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        update_ids = itertools.count(1)
        recent: list[dict[str, object]] = []
        handled: dict[int, list[float]] = {}
        with httpx.Client(timeout=30) as client:
            while not self.stop_faults.wait(self.rng.uniform(0.5, 2.0)):
                user = USER_BASE + self.rng.randrange(self.args.broadcasters)
                update = _id_update(next(update_ids), user)
                recent = [*recent[-19:], update]
                batch = [update, update] if self.rng.random() < 0.8 else self.rng.sample(recent, min(5, len(recent)))
                for body in batch:
                    try:
                        response = client.post(url, json=body, headers=headers)
                    except httpx.HTTPError:
                        self.faults.webhook_other += 1
                        continue
                    self.faults.redeliveries += 1
                    if response.status_code >= 500:
                        self.faults.webhook_5xx += 1
                        self.faults.webhook_5xx_at.append(time.time())
                    elif response.status_code != 200:
                        self.faults.webhook_other += 1
                    elif response.json():  # an answer: the update was handled (a repeat answers {})
                        uid = int(str(body["update_id"]))
                        times = handled.setdefault(uid, [])
                        if times:
                            flushed = any(times[-1] <= f for f in self.flush_times)
                            if flushed:
                                self.faults.handled_again_after_flush += 1
                            else:
                                self.faults.handled_twice_without_flush += 1
                        times.append(time.time())

    # ---- observers ----------------------------------------------------------------------------------

    def ticker(self) -> None:
        url = f"http://127.0.0.1:{self.web_port}/tick"
        headers = {"Authorization": f"Bearer {TICK_TOKEN}"}
        with httpx.Client(timeout=60) as client:
            while not self.stop_all.wait(self.rng.uniform(2.0, 3.0)):
                try:
                    ok = client.post(url, headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.faults.tick_ok += 1
                else:
                    self.faults.tick_failed += 1

    def health_poller(self) -> None:
        """One poll a second, each in its own thread: a probe waiting for a dead PostgreSQL (up to its
        3 s timeout) must not thin out the polls."""
        url = f"http://127.0.0.1:{self.web_port}/health"

        def poll(client: httpx.Client, asked: float) -> None:
            try:
                status = client.get(url).status_code
            except httpx.HTTPError:
                status = 0
            with self.lock:
                self.health.append((asked, status))

        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(8) as pool:
            while not self.stop_all.wait(1.0):
                pool.submit(poll, client, time.time())
        self.health.sort()
        self.faults.health_polls = len(self.health)
        self.faults.health_503_s = sum(1 for _, s in self.health if s == 503)

    def health_verdict(self) -> None:
        # A 503 (with Retry-After: Telegram redelivers) is the webhook's answer while PostgreSQL is
        # down or the pool is reconnecting; anywhere else it is a defect.
        margin = 10.0
        windows = self.outages + self.faults.outages.windows()
        self.faults.webhook_5xx_outside_outages = sum(
            1 for t in self.faults.webhook_5xx_at
            if not any(stopped - 1 <= t <= started + margin for stopped, started in windows)
        )
        for stopped, started in self.outages:
            during = [s for t, s in self.health if stopped <= t <= started]
            if 503 in during:
                self.faults.outages_seen_503 += 1
            # Up to the next outage only: one that begins before the answer is back (a long Redis stop
            # right after a restart) is not this restart's recovery time.
            following = [a for a, _ in windows if a > started]
            until = min(following) if following else float("inf")
            back = [t for t, s in self.health if started <= t < until and s == 200]
            if back:
                self.faults.recovery_s.append(back[0] - started)

    # ---- the run ------------------------------------------------------------------------------------

    def run(self) -> tuple[bool, list[tuple[str, str]]]:
        a = self.args
        self.pg = PrivatePostgres(Path("/tmp"))
        self.redis = PrivateRedis(self.logs, "service")
        self.fake_redis = PrivateRedis(self.logs, "telegram")
        web_proc: subprocess.Popen[bytes] | None = None
        api = None
        threads: list[threading.Thread] = []
        cut = datetime.now(UTC)
        try:
            self.pg.init()
            self.database_url = self.pg.database("tgcast_soak")
            start_at = datetime.now(UTC) + timedelta(seconds=15)
            seed(self.database_url, self.fake_redis.url, users=a.broadcasters, groups_per_user=a.groups,
                 interval_minutes=1, box=SecretBox([SESSION_KEY]), start_at=start_at, spread_s=60)
            self.api_port, self.web_port = free_port(), free_port()
            api = spawn([sys.executable, "-m", "bench.fake_botapi_server", "--port", str(self.api_port)],
                        self.env(), self.logs / "botapi.log")
            web_proc = self.web = spawn([sys.executable, "-m", "tgcast_cli", "web", "--port", str(self.web_port)],
                                        self.env(), self.logs / "web.log")
            for _ in range(a.workers):
                self.start_worker()
            self.witness = self.workers[0]
            # Generous: on a shared, loaded box the web process's imports alone took over 30 s once.
            wait_http(f"http://127.0.0.1:{self.web_port}/health", timeout=120)
            ledger = Ledger(self.database_url)
            observers = [self.ticker, self.health_poller, self.watchdog, lambda: ledger.run(self.stop_all)]
            plan = plan_for(a.minutes * 60)
            faulty = [self.killer, self.flusher, self.pg_restarter, self.redeliverer, lambda: self.outager(plan)]
            threads = [threading.Thread(target=f, daemon=True) for f in [*observers, *faulty]]
            for t in threads:
                t.start()
            print(f"soak: {a.broadcasters} broadcasters × {a.groups} groups, faults for {a.minutes} min", flush=True)
            self.fault_start = time.time()
            self.stop_faults.wait(a.minutes * 60)
            self.stop_faults.set()
            for t in threads[len(observers):]:
                t.join()
            cut = datetime.now(UTC)
            # Settled by the witness alone: proof that a worker that lived through every flush and
            # PostgreSQL restart still takes jobs.
            with self.lock:
                others = [w for w in self.workers if w is not self.witness]
                self.workers = [self.witness]
            for w in others:
                stop(w)
                self.gone(w)
            print("soak: faults stopped; settling with the witness worker alone", flush=True)
            settled = self.settle(cut)
            self.witness_alive = self.witness.poll() is None
            ledger.snapshot()
            self.stop_all.set()
            for t in threads[:len(observers)]:
                t.join()
        except BaseException:
            # The private servers go with a failed start too (they would outlive the harness).
            self.pg.remove()
            self.redis.remove()
            self.fake_redis.remove()
            raise
        finally:
            self.stop_faults.set()
            self.stop_all.set()
            for w in self.workers:
                stop(w)
            for p in (web_proc, api):
                if p is not None:
                    stop(p)
        try:
            self.diagnose_unfinished(cut)
            cycles = read_cycles(self.database_url)
            posts = read_posts(self.fake_redis.url)
            peaks = read_peaks(self.fake_redis.url)
            peak_times = read_peak_times(self.fake_redis.url)
        finally:
            self.pg.remove()
            self.redis.remove()
            self.fake_redis.remove()
        self.health_verdict()
        self.outage_evidence(posts, ledger)
        self.diagnose_resends(posts, ledger)
        self.diagnose_peaks(peaks, peak_times)
        verdict = judge(cycles, ledger, posts, cut, peaks)
        f = self.faults
        ok = (verdict.ok and not f.unexpected_exits and not f.handled_twice_without_flush and self.witness_alive
              and not f.webhook_5xx_outside_outages)
        return ok, self.table(verdict, ledger, settled)

    def outage_evidence(self, posts: list[Post], ledger: Ledger) -> None:
        """What the long outages met: posts made while PostgreSQL was stopped (and in the second
        before, whose records were on their way), and the hung account's posts during its hang."""
        log = self.faults.outages
        for stopped, started in log.postgres:
            self.faults.posts_while_pg_stopped += sum(1 for p in posts if stopped - 1 <= p.at <= started)
        for tg_user_id, since, until in log.hangs:
            hung = [p for p in posts if p.sender == tg_user_id and since <= p.at <= until]
            self.faults.hung_posts += len(hung)
            self.faults.hung_sent_recorded += sum(
                1 for p in hung if (d := ledger.by_rid.get(p.random_id)) is not None and d.status == "sent")

    def fault_windows(self) -> list[tuple[str, float, float]]:
        """Every fault with its start and end (unix time), for placing an observation among them."""
        log = self.faults.outages
        return ([(f"redis-{'kept' if k else 'empty'}", a, b) for a, b, k in log.redis]
                + [("postgres-60s", a, b) for a, b in log.postgres]
                + [("pg-restart", a, b) for a, b in self.outages]
                + [("freeze", a, b) for _, a, b in log.freezes]
                + [("hang", a, b) for _, a, b in log.hangs]
                + [("flush", t, t) for t in self.flush_times])

    def diagnose_peaks(self, peaks: dict[int, int], times: dict[int, float]) -> None:
        """Each account that had two connections open at once, with when, among the outages
        (artifacts/soak/peaks.txt)."""
        windows = self.fault_windows() + [("kill", t, t) for t in self.kill_times]
        lines = []
        for uid, peak in sorted(peaks.items(), key=lambda kv: times.get(kv[0], 0)):
            if peak < 2:
                continue
            at = times.get(uid, 0.0)
            near = [f"{name} {a - self.fault_start:.0f}..{b - self.fault_start:.0f}"
                    for name, a, b in windows if a - 5 <= at <= b + 60]
            lines.append(f"account {uid}: {peak} open at {at - self.fault_start:.1f} s; "
                         f"near: {'; '.join(near) or 'none'}")
        (self.logs / "peaks.txt").write_text("\n".join(lines) + "\n")
        for line in lines[:15]:
            print(f"soak: peak {line}", flush=True)

    def diagnose_resends(self, posts: list[Post], ledger: Ledger) -> None:
        """Each random_id posted twice, with where its first post fell among the outages: what a fix
        needs, written before the private servers go (artifacts/soak/resends.txt)."""
        windows = self.fault_windows()
        kills = [("kill", t, t) for t in self.kill_times]
        by_key: dict[tuple[int, int], list[float]] = {}
        for p in posts:
            by_key.setdefault((p.sender, p.random_id), []).append(p.at)
        lines = []
        for (sender, rid), times in sorted(by_key.items(), key=lambda kv: min(kv[1])):
            if len(times) < 2:
                continue
            times.sort()
            d = ledger.by_rid.get(rid)
            near = [f"{name} {a - self.fault_start:.0f}..{b - self.fault_start:.0f}"
                    for name, a, b in windows if a - 60 <= times[0] <= b + 5]
            near += [f"kill {t - self.fault_start:.1f}" for name, t, _ in kills if 0 <= t - times[0] <= 2]
            seen = " > ".join(f"{status} {t - self.fault_start:.0f}" for t, status in ledger.history.get(rid, []))
            lines.append(f"rid {rid} sender {sender} delivery {d.id if d else '?'} cycle {d.cycle_id if d else '?'}"
                         f" chat {d.chat_id if d else '?'} status {d.status if d else '?'}: posted at "
                         + ", ".join(f"{t - self.fault_start:.1f}" for t in times)
                         + f" s; near: {'; '.join(near) or 'none'}; row seen: {seen}")
        (self.logs / "resends.txt").write_text("\n".join(lines) + "\n")
        for line in lines[:15]:
            print(f"soak: resent {line}", flush=True)
        # The traffic around the long PostgreSQL stop, in 5 s buckets, to read "records waiting" from.
        for stopped, _ in self.faults.outages.postgres:
            buckets = [sum(1 for p in posts if stopped + k <= p.at < stopped + k + 5) for k in range(-30, 90, 5)]
            print(f"soak: posts per 5 s from 30 s before the PostgreSQL stop: {buckets}", flush=True)

    def diagnose_unfinished(self, cut: datetime) -> None:
        """For a cycle still running after the settle: its deliveries, the job that should carry it and
        where that job is, printed before the private servers go (they are what a fix needs)."""
        try:
            with psycopg.connect(self.database_url, connect_timeout=5) as conn:
                stuck = conn.execute(
                    "SELECT id, owner_id, last_continuation, lock_busy, started_at FROM cycles"
                    " WHERE status = 'running' AND created_at <= %(cut)s ORDER BY id LIMIT 10", {"cut": cut}
                ).fetchall()
                rows = {c[0]: conn.execute(
                    "SELECT status, retry, next_attempt_at, lease_until FROM deliveries WHERE cycle_id = %(c)s"
                    " ORDER BY position", {"c": c[0]}).fetchall() for c in stuck}
        except psycopg.Error as exc:
            print(f"soak: could not read unfinished cycles: {exc}", flush=True)
            return
        from redis import Redis
        r = Redis.from_url(self.redis.url)
        try:
            for cycle_id, owner_id, continuation, busy, started in stuck:
                pointer: bytes | None = r.get(f"tgcast:cycle-job:{cycle_id}")  # type: ignore[assignment]
                job: dict[bytes, bytes] = (
                    r.hgetall(f"rq:job:{pointer.decode()}") if pointer else {})  # type: ignore[assignment]
                fields = {k.decode(): v.decode(errors="replace")[:80] for k, v in job.items()
                          if k.decode() in ("status", "origin", "enqueued_at", "started_at", "ended_at",
                                            "worker_name", "exc_info")}
                print(f"soak: unfinished cycle {cycle_id} (owner {owner_id}, started {started}, last continuation"
                      f" {continuation}, lock busy {busy}): deliveries {rows[cycle_id]}; pointer {pointer!r};"
                      f" job {fields}; lock {r.exists(f'tgcast:lock:account:{owner_id}')};"
                      f" claim {r.get(f'tgcast:conn:{owner_id}')!r}", flush=True)
            known: set[bytes] = r.smembers("rq:queues")  # type: ignore[assignment]
            print(f"soak: queues {sorted(k.decode() for k in known)}", flush=True)
        finally:
            r.close()

    def settle(self, cut: datetime) -> float:
        """Until every cycle created before the faults stopped has finished (ticking goes on)."""
        started = time.monotonic()
        while time.monotonic() - started < SETTLE_MAX_S:
            try:
                with psycopg.connect(self.database_url, connect_timeout=2) as conn:
                    left = conn.execute(
                        "SELECT count(*) FROM cycles WHERE status = 'running' AND created_at <= %(cut)s", {"cut": cut}
                    ).fetchone()
                if left is not None and left[0] == 0:
                    break
            except psycopg.Error:
                pass
            time.sleep(2)
        return time.monotonic() - started

    def table(self, v: Verdict, ledger: Ledger, settled: float) -> list[tuple[str, str]]:
        f = self.faults
        a = self.args
        return [
            ("scenario", f"{a.broadcasters} broadcasters × {a.groups} groups, 1-min interval, {a.workers} workers, "
                         f"faults for {a.minutes} min, settled in {settled:.0f} s"),
            ("cycles judged (created before the faults stopped)", str(v.cycles)),
            ("deliveries expected (sum of cycles' total)", str(v.expected)),
            ("sent once", str(v.sent_once)),
            ("sent twice (same sender, chat, cycle)", _mark(v.sent_twice)),
            ("failed / cancelled (terminal, recorded)", f"{v.failed} / {v.cancelled}"),
            ("lost", _mark(v.lost) + " (" + ", ".join(f"{k} {n}" for k, n in v.lost_detail.items()) + ")"),
            ("posts not matching any delivery", _mark(v.unattributed_posts)),
            ("early cycles", _mark(v.early)),
            ("overlapping cycles", _mark(v.overlapping)),
            ("group posted twice < interval apart", _mark(v.too_close)),
            ("cycles still running at the end", str(v.unfinished_cycles)),
            ("most connections of one account open at once (accounts above 1)",
             f"{v.peak_connections} ({_mark(v.sessions_doubled)})"),
            ("re-sends of a post after \"Telegram\" forgot its random_id (60 s)",
             _mark(v.resends) + (f" (gaps {min(v.resend_gaps_s):.0f}–{max(v.resend_gaps_s):.0f} s)"
                                 if v.resend_gaps_s else "")),
            ("start lag (started_at − scheduled_at)", lag_summary(v.lag_ms)),
            ("(a) workers SIGKILLed and replaced", str(f.kills)),
            ("(b) Redis FLUSHALL", str(f.flushes)),
            ("(c) PostgreSQL restarts (fast stop, down total)", f"{f.pg_restarts} ({f.pg_down_s:.0f} s)"),
            ("(d) webhook posts incl. redeliveries / 5xx (503 while PostgreSQL is down, by design) / other errors",
             f"{f.redeliveries} / {f.webhook_5xx} ({_mark(f.webhook_5xx_outside_outages)} outside) / "
             f"{f.webhook_other}"),
            *self.outage_rows(),
            ("(d) handled again: after a flush / without a flush",
             f"{f.handled_again_after_flush} / {_mark(f.handled_twice_without_flush)}"),
            ("witness worker (never killed) alive at the end, settled alone",
             "yes" if self.witness_alive else "**no** ✗"),
            ("/health: 503 answers (1 poll/s) / outages that showed 503",
             f"{f.health_503_s} of {f.health_polls} / {f.outages_seen_503} of {f.pg_restarts}"),
            ("/health: back to 200 after PostgreSQL started", _recovery(f.recovery_s)),
            ("ticks ok / failed (failures expected during outages)", f"{f.tick_ok} / {f.tick_failed}"),
            ("workers started just before a long outage that gave up at start-up (exit 2, restarted after)",
             str(f.gave_up_starting)),
            ("processes that exited on their own", _mark(len(f.unexpected_exits)) +
             (f" ({'; '.join(f.unexpected_exits)})" if f.unexpected_exits else "")),
            ("ledger snapshots ok / during outages", f"{ledger.snapshots} / {ledger.failed_snapshots}"),
            ("connections closed by a worker's exit (the OS closes a dead process's sockets)",
             str(f.connections_closed_by_exit)),
        ]

    def outage_rows(self) -> list[tuple[str, str]]:
        f = self.faults
        log = f.outages
        kept = [(a, b) for a, b, k in log.redis if k]
        empty = [(a, b) for a, b, k in log.redis if not k]
        hangs = "; ".join(f"account {uid}, {until - since:.0f} s" for uid, since, until in log.hangs) or "not run"
        return [
            ("(e) Redis stopped, data kept (SHUTDOWN SAVE, restarted from the dump)", _windows(kept)),
            ("(e) Redis stopped, back empty (SHUTDOWN NOSAVE)", _windows(empty)),
            ("(f) PostgreSQL stopped (fast) / started right after a post / posts accepted in the second before and "
             "while down", f"{_windows(log.postgres)} / "
             f"{'not run' if f.pg_stop_on_post is None else 'yes' if f.pg_stop_on_post else 'no post within 60 s'} / "
             f"{f.posts_while_pg_stopped}"),
            ("(g) witness worker frozen (SIGSTOP, then SIGCONT)", _windows([(a, b) for _, a, b in log.freezes])),
            ("(h) Telegram stops answering one account / its posts meanwhile (recorded sent)",
             f"{hangs} / {f.hung_posts} ({f.hung_sent_recorded})"),
        ]


def _windows(spans: list[tuple[float, float]]) -> str:
    return ", ".join(f"{b - a:.0f} s" for a, b in spans) or "not run"


def _mark(n: int) -> str:
    return f"{n}" if n == 0 else f"**{n}** ✗"


def _recovery(values: list[float]) -> str:
    if not values:
        return "–"
    return f"max {max(values):.1f} s, median {sorted(values)[len(values) // 2]:.1f} s"


def _id_update(update_id: int, user_id: int) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": int(time.time()), "text": "/id",
            "entities": [{"type": "bot_command", "offset": 0, "length": 3}],
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Soak", "language_code": "en"},
        },
    }


def markdown(rows: list[tuple[str, str]], command: str, ok: bool) -> str:
    lines = [f"Command: `{command}` (also `make soak`). Result: **{'PASS' if ok else 'FAIL'}**.", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=8)
    parser.add_argument("--broadcasters", type=int, default=300)
    parser.add_argument("--groups", type=int, default=5)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--doc", action="store_true", help="write the table into docs/reliability.md ## Soak")
    args = parser.parse_args()
    logs = ROOT / "artifacts" / "soak"
    logs.mkdir(parents=True, exist_ok=True)
    ok, rows = Soak(args, logs).run()
    command = (f"python -m bench.soak --minutes {args.minutes:g} --broadcasters {args.broadcasters} "
               f"--groups {args.groups} --workers {args.workers}"
               + (f" --seed {args.seed}" if args.seed is not None else ""))
    text = markdown(rows, command, ok)
    (logs / "report.md").write_text(text)
    print(text)
    if args.doc:
        write_section(ROOT / "docs" / "reliability.md", text)
    return 0 if ok else 1


def write_section(doc: Path, table: str) -> None:
    """Replace only the "## Soak" section (other sections of the file belong to other runs)."""
    section = "## Soak\n\n" + SOAK_INTRO + "\n" + table
    text = doc.read_text() if doc.exists() else "# Reliability\n"
    head, marker, rest = text.partition("\n## Soak\n")
    if marker:
        after = rest.find("\n## ")
        tail = rest[after:] if after >= 0 else ""
        text = head + "\n" + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


SOAK_INTRO = """Real `tgcast web` + `tgcast worker` processes, a ticker calling `/tick` every 2–3 s, on a private
PostgreSQL and two private Redis servers (the service's, and the emulated Telegram's via
`FAKE_REDIS_URL`, so a flush or a stop does not erase "Telegram"). Settings: `MIN_INTERVAL_MINUTES=1`,
`JITTER_MAX_MS=3000`, `SEND_PAUSE_*=100..150` (so the sent records' 50 ms group commit is on),
`LEASE_S=40`, `REQUEST_TIMEOUT_S=5` (the request bound + 5 s fits in a quarter of the lease, as in
production), `LOCK_TTL_S=10`, `FAKE_RANDOM_ID_TTL_S=60` (the emulator forgets a `random_id` one interval
after its post: Telegram promises no duration, so a resend a whole interval later posts again;
`RANDOM_ID_TRUST_S` stays at its default, 60, and past it an unanswered send is checked against the
group's history before any resend); each worker runs its batches concurrently (`WORKER_CONCURRENCY` 500,
account connections cached and claimed). Faults at random points: (a) SIGKILL a worker and start another,
(b) `FLUSHALL` the service's Redis, (c) restart PostgreSQL (`pg_ctl stop -m fast`, start 4–8 s later),
(d) post `/id` updates twice or replay a recent batch. And on a fixed timeline, one after another
(`bench/soak_outages.py`): (h) "Telegram" stops answering one account for 3 minutes (its sends are
posted, never answered: the emulator's `hang`), (e) the service's Redis **stopped** for 45 s with its
data kept (`SHUTDOWN SAVE` into the soak's directory and a restart from that dump, as a managed failover
or a restart with persistence keeps it; keys whose TTL ran out meanwhile are gone), (g) the witness
worker frozen for 40 s (SIGSTOP, then SIGCONT), (f) PostgreSQL stopped for 60 s the moment "Telegram"
accepts a post (its record waiting in the group commit), (e) Redis stopped for 120 s and back **empty**
(`SHUTDOWN NOSAVE`: a restart without persistence, a flush and an outage at once). No worker is killed or
started during a long stop of Redis or PostgreSQL (a worker started into one gives up after
`STARTUP_WAIT_S`, which a platform meets with restarts; what is judged is whether the running ones ride
it out), and the random flushes and restarts wait for it. A worker that dies (killed or stopped) has its
emulated connections closed, as the operating system closes a dead process's sockets. Judged: every cycle
created before the faults stopped, after settling (ticking goes on). "Sent twice" counts posts the
emulator accepted per (sender, chat, cycle), mapped through a ledger of every delivery row (snapshotted
each second, since finished cycles' rows are pruned); "lost" is deliveries that never became terminal
plus deliveries recorded sent that the emulator never accepted. The run exits non-zero on any duplicate,
loss, early or overlapping cycle, a group posted twice by one broadcast less than the interval apart (on
the emulator's receive times), an account with two connections open at once (the emulator's peak per
account; Telegram would end the session), a `random_id` posted twice (a resend after the emulator forgot
it), a webhook update handled twice without a Redis flush (or an empty restart) in between, or a process
exiting on its own.
"""


if __name__ == "__main__":
    sys.exit(main())
