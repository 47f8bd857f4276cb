"""Load and lag: many broadcasters at a short interval through the real processes.

2,000 broadcasters × 20 groups at a 60-second interval (the delivery rate of 10,000 broadcasters at
5 minutes, ~667 deliveries/s) with the fake gateway at zero latency and no pacing pause; the real web
process serves `/tick` (called by this harness every few seconds, as a platform cron would), real
`tgcast worker` processes send, real PostgreSQL and Redis. Reported from the database afterwards:
deliveries/s, start lag percentiles, early and overlapping cycles, duplicates; and CPU and RSS of every
process.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from bench import procs
from bench.common import (
    ROOT,
    SESSION_KEY,
    TICK_TOKEN,
    base_env,
    flush_redis,
    free_port,
    fresh_database,
    percentile,
    proc_stats,
    services,
    spawn,
    stop_all,
    wait_http,
)
from bench.seed import seed
from core.crypto import SecretBox

USERS = 2000
GROUPS = 20
INTERVAL_MIN = 1
WARMUP_S = 10
MEASURE_S = int(os.environ.get("BENCH_LOAD_SECONDS", "15"))
TICK_EVERY_S = 3
WORKERS = 3


def _ticker(url: str, stop_event: threading.Event, durations: list[float], log: Path) -> None:
    """The platform cron, every few seconds; each answer and the queue sizes are logged for diagnosis."""
    from redis import Redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    headers = {"Authorization": f"Bearer {TICK_TOKEN}"}
    with httpx.Client(timeout=60) as client, Redis.from_url(services()["redis"]) as r, log.open("w") as out:
        queue = Queue("tgcast-broadcast", connection=r)
        while not stop_event.wait(TICK_EVERY_S):
            try:
                response = client.post(url, headers=headers)
                if response.status_code == 200:
                    durations.append(float(response.json().get("duration_ms", 0)))
                out.write(f"{time.time():.1f} {response.status_code} {response.text.strip()} queued={queue.count} "
                          f"scheduled={ScheduledJobRegistry(queue=queue).count} "
                          f"started={StartedJobRegistry(queue=queue).count}\n")
                out.flush()
            except httpx.HTTPError as exc:
                out.write(f"{time.time():.1f} error {type(exc).__name__}\n")


def _posted_total(prefix: str) -> int:
    from redis import Redis

    total = 0
    with Redis.from_url(services()["redis"]) as r:
        for key in r.scan_iter(f"{prefix}fake:posted:*", count=1000):
            total += int(r.llen(key))
    return total


def run(logs: Path) -> list[tuple[str, str, str]]:
    database_url = fresh_database("tgcast_bench_load")
    flush_redis()
    start_at = datetime.now(UTC) + timedelta(seconds=10)
    seed(database_url, services()["redis"], users=USERS, groups_per_user=GROUPS, interval_minutes=INTERVAL_MIN,
         box=SecretBox([SESSION_KEY]), start_at=start_at, spread_s=60)
    port = free_port()
    python = sys.executable
    env = base_env(
        database_url,
        BOT_API_BASE="http://127.0.0.1:9/unused",  # no notices expected; a wrong call fails fast
        JITTER_MAX_MS="0", SEND_PAUSE_MIN_MS="0", SEND_PAUSE_MAX_MS="0", CONT_DELAY_MS="0", CONT_JITTER_MS="0",
        MIN_INTERVAL_MINUTES="1",
        # With a 60 s interval the default 60 s due window would select each config the moment its
        # previous cycle starts, and push it a whole interval (previous_cycle_running); a platform
        # cron that ticks every few seconds needs only a short window.
        DUE_WINDOW_S="20", LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    )
    web = spawn([python, "-m", "tgcast_cli", "web", "--port", str(port)], env, logs / "load-web.log")
    workers = [spawn([python, "-m", "tgcast_cli", "worker"], env, logs / f"load-worker{i}.log") for i in range(WORKERS)]
    stop_event = threading.Event()
    tick_ms: list[float] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        ticker = threading.Thread(target=_ticker, args=(f"http://127.0.0.1:{port}/tick", stop_event, tick_ms,
                                                          logs / "load-ticks.log"))
        ticker.start()
        time.sleep(max(0.0, (start_at - datetime.now(UTC)).total_seconds()) + WARMUP_S)
        window_start = datetime.now(UTC)
        cpu_start = {p.pid: proc_stats(p.pid)[0] for p in [web, *workers]}
        box_start = procs.CpuSnapshot.take({})
        time.sleep(MEASURE_S)
        window_end = datetime.now(UTC)
        stats = {p.pid: proc_stats(p.pid) for p in [web, *workers]}
        box = procs.box_percent(box_start, procs.CpuSnapshot.take({}))
        stop_event.set()
        ticker.join()
        # Let the cycles started inside the window finish before counting them.
        time.sleep(10)
    finally:
        stop_event.set()
        stop_all([web, *workers])
    with psycopg.connect(database_url) as conn:
        sent, lags = conn.execute(
            """
            SELECT coalesce(sum(sent), 0), array_agg(extract(epoch FROM started_at - scheduled_at) * 1000)
            FROM cycles WHERE started_at >= %(a)s AND started_at < %(b)s
            """,
            {"a": window_start, "b": window_end},
        ).fetchone()  # type: ignore[misc]
        early = conn.execute(
            """
            SELECT count(*) FROM (
                SELECT started_at < scheduled_at
                       OR scheduled_at < lag(scheduled_at) OVER w + make_interval(mins => interval_minutes) AS early
                FROM cycles WINDOW w AS (PARTITION BY owner_id ORDER BY seq)
            ) s WHERE early
            """
        ).fetchone()[0]  # type: ignore[index]
        overlapping = conn.execute(
            """
            SELECT count(*) FROM (
                SELECT started_at < lag(finished_at) OVER w AS overlap
                FROM cycles WINDOW w AS (PARTITION BY owner_id ORDER BY seq)
            ) s WHERE overlap
            """
        ).fetchone()[0]  # type: ignore[index]
        recorded = conn.execute("SELECT coalesce(sum(sent), 0) FROM cycles").fetchone()[0]  # type: ignore[index]
        unfinished = conn.execute("SELECT count(*) FROM cycles WHERE status = 'running'").fetchone()[0]  # type: ignore[index]
    posted = _posted_total("tgcast:")
    lag_values = [float(x) for x in (lags or []) if x is not None]
    rate = float(sent) / MEASURE_S
    p50, p95, p99 = (percentile(lag_values, p) for p in (50, 95, 99))
    goal = "met" if p99 <= 2000 else "MISSED"
    duplicates = max(0, posted - int(recorded) - _in_flight_allowance(unfinished))
    window = MEASURE_S
    proc_rows = []
    for name, proc in [("web", web), *[(f"worker{i}", w) for i, w in enumerate(workers)]]:
        cpu_end, rss = stats[proc.pid]
        proc_rows.append(f"{name} {100 * (cpu_end - cpu_start[proc.pid]) / window:.0f}% CPU, {rss:.0f} MiB")
    return [
        ("load, machinery only (no pacing, no latency): deliveries/s (target ~667)", f"{rate:.0f}",
         f"{USERS} broadcasters × {GROUPS} groups every {INTERVAL_MIN} min, {WORKERS} workers, {MEASURE_S} s window"),
        ("load: start lag p50 / p95 / p99 (ms)", f"{p50:.0f} / {p95:.0f} / {p99:.0f}", f"goal p99 ≤ 2000 ms: {goal}"),
        ("load: early cycles / overlapping cycles", f"{early} / {overlapping}", "must be 0 / 0"),
        ("load: duplicates (posted − recorded sent)", f"{duplicates}",
         f"must be 0 (posted {posted}, recorded {recorded}, running cycles at the end {unfinished})"),
        ("load: /tick duration median (ms)", f"{percentile(tick_ms, 50):.0f}", f"{len(tick_ms)} ticks"),
        ("load: processes", "; ".join(proc_rows),
         f"CPU over the window; RSS at its end; the whole box {box:.0f} of 200 % busy (PostgreSQL, Redis, "
         "the harness and other users of the box included)"),
    ]



def _in_flight_allowance(running: int) -> int:
    # Cycles still running when the processes stopped may have posted without recording yet; their
    # sends are recorded by lease recovery later, so they are not counted as duplicates here.
    return running * GROUPS


if __name__ == "__main__":
    for row in run(ROOT / "artifacts" / "bench"):
        print(" | ".join(row))
