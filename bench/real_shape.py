"""Capacity in the real shape: 10,000 DIFFERENT broadcasters × 20 groups every 5 minutes, the shape
production has, beside the compressed form of bench/capacity.py (2,000 every minute: the same rate,
a fifth of the accounts).

What this shape adds: five times as many accounts connected between their cycles (each worker keeps
its accounts' connections open for CLIENT_IDLE_S), 2,000 configs due per minute for a cron that calls
`/tick` once a minute (as the platform's does: the harness plays it), and the 60-s default due window.
Every setting is its default (core/settings.py) except the emulator's latency model (bench/capacity.py,
LATENCY); 4 worker processes. The first cycles are spread over one interval (the warm-up, in which every
account connects for the first time), then the window measures two full intervals.

About 16 minutes: 5 of warm-up, 10 of window, ~1 of seeding and analysis. For a shorter run that keeps
the shape (distinct accounts, 5 minutes): BENCH_REAL_BROADCASTERS (fewer accounts; the rate scales with
them), BENCH_REAL_WINDOW_S (a shorter window), BENCH_REAL_WORKERS; the table says what was run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.capacity import GROUPS, LATENCY, Level, Result, _cpu, level_table, production_settings, run_level
from bench.common import ROOT, percentile

BROADCASTERS = 10_000
INTERVAL_MIN = 5
WORKERS = 4
WARMUP_S = INTERVAL_MIN * 60
WINDOW_S = 2 * INTERVAL_MIN * 60
CRON_S = 60
# Seeding, start-up, stopping and the analysis of ~600,000 posts.
OVERHEAD_S = 75
# Goals of the real shape.
RATE_SHARE = 0.95
LAG_P99_S = 5.0
CONNECTS_PER_DELIVERY = 0.01
WORKER_RSS_MIB = 2048
TICK_MEDIAN_MS = 1000


def level() -> Level:
    return Level(
        100, workers=int(os.environ.get("BENCH_REAL_WORKERS", WORKERS)), warmup_s=WARMUP_S,
        measure_s=int(os.environ.get("BENCH_REAL_WINDOW_S", WINDOW_S)), interval_min=INTERVAL_MIN,
        broadcasters=int(os.environ.get("BENCH_REAL_BROADCASTERS", BROADCASTERS)), tick_every_s=CRON_S,
        due_window_s=None, spread_s=INTERVAL_MIN * 60, name="real shape",
    )


def expected_s() -> int:
    lv = level()
    return lv.warmup_s + lv.measure_s + OVERHEAD_S


def scaled(lv: Level) -> str:
    changes = []
    if lv.users != BROADCASTERS:
        changes.append(f"{lv.users:,} broadcasters instead of {BROADCASTERS:,} (the needed rate scales with them)")
    if lv.measure_s != WINDOW_S:
        changes.append(f"a {lv.measure_s} s window instead of {WINDOW_S} s")
    if lv.workers != WORKERS:
        changes.append(f"{lv.workers} workers instead of {WORKERS}")
    return "; ".join(changes)


def goals(r: Result) -> str:
    lines = ["| goal | result | verdict |", "|---|---|---|"]

    def goal(name: str, ok: bool, evidence: str) -> None:
        lines.append(f"| {name} | {evidence} | {'PASS' if ok else '**MISS**'} |")

    lv = r.level
    goal(f"≥ {RATE_SHARE:.0%} of the needed rate with ≤ 4 workers",
         r.rate >= RATE_SHARE * lv.needed and lv.workers <= 4,
         f"{r.rate:.0f} of {lv.needed:.0f}/s ({r.rate / lv.needed:.1%}) on {lv.workers} workers")
    p99 = percentile(r.lag_past_jitter_ms, 99) / 1000
    goal(f"start lag p99 ≤ {LAG_P99_S:.0f} s past the jitter", p99 <= LAG_P99_S,
         f"{p99:.1f} s" + (f" ({r.not_started} cycles not started by the end)" if r.not_started else ""))
    goal(f"connects per delivery ≤ {CONNECTS_PER_DELIVERY} past each account's first connect",
         r.per_delivery_steady <= CONNECTS_PER_DELIVERY,
         f"{r.per_delivery_steady:.4f} ({r.connects - r.first_connects:,} connects besides {r.first_connects:,} "
         f"first ones, {r.delivered:,} deliveries)")
    bad = (r.early_cycles + r.early_spacing, r.overlapping, r.duplicates + r.unattributed)
    goal("0 early / overlapping / duplicates", bad == (0, 0, 0), " / ".join(str(b) for b in bad))
    above = f" ({r.accounts_over_one} accounts above 1)" if r.accounts_over_one else ""
    goal("1 connection per account at most", r.peak_per_account <= 1, f"at most {r.peak_per_account}{above}")
    goal(f"total worker RSS ≤ {WORKER_RSS_MIB // 1024} GiB with every account connected",
         r.worker_rss_peak <= WORKER_RSS_MIB, f"{r.worker_rss_peak:.0f} MiB peak")
    tick = percentile(r.tick_ms, 50) if r.tick_ms else float("nan")
    due = percentile([float(n) for n in r.tick_enqueued], 50) if r.tick_enqueued else 0
    goal(f"/tick under {TICK_MEDIAN_MS / 1000:.0f} s median at full load", tick < TICK_MEDIAN_MS,
         f"{tick:.0f} ms median over {len(r.tick_ms)} ticks, {due:.0f} cycles started per tick (median)")
    return "\n".join(lines)


def section(r: Result, seconds: float) -> str:
    lv = r.level
    settings = ", ".join(f"{k} {v}" for k, v in production_settings().items())
    latency = ", ".join(f"{k} {v}" for k, v in LATENCY.items())
    what = scaled(lv)
    return (
        "## Capacity in the real shape\n\n"
        f"{lv.users:,} different broadcasters × {GROUPS} groups every {lv.interval_min} minutes "
        f"(needed: {lv.needed:.0f} deliveries/s), {lv.workers} worker processes, `/tick` called once a minute "
        f"as the platform's cron does, every setting at its default ({settings}; DUE_WINDOW_S, TICK_CAP, "
        "MIN_INTERVAL_MINUTES too), the emulator's latency model as in the compressed runs "
        f"({latency}). First cycles spread over one interval (the warm-up, {lv.warmup_s} s), then a window of "
        f"{r.window_s:.0f} s; measured as in the compressed runs ({seconds:.0f} s for the run). "
        + (f"**Scaled**: {what}. " if what else "Not scaled: the production shape as it is. ")
        + "\n\n"
        f"{level_table([r])}\n\n### Goals (real shape)\n\n{goals(r)}\n\n"
        f"CPU in the window: {_cpu(r)}.\n"
    )


def run(logs: Path) -> str:
    lv = level()
    print(f"bench: real shape ({lv.users:,} broadcasters every {lv.interval_min} min, {lv.workers} workers, "
          f"{lv.warmup_s} s warm-up + {lv.measure_s} s window: ~{expected_s() / 60:.0f} min) …",
          file=sys.stderr, flush=True)
    started = time.monotonic()
    result = run_level(lv, logs)
    return section(result, time.monotonic() - started)


if __name__ == "__main__":
    print(run(ROOT / "artifacts" / "bench"))
