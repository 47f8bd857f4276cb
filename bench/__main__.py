"""`make bench`: every benchmark, side by side in one run; prints a markdown table and writes it with
the machine's description to docs/benchmarks.md.

About 25 minutes in all: the real-shape capacity run alone takes ~16 (5 minutes of warm-up and 10 of
window at the production interval), the other parts share the rest (the compressed capacity run's
longest window gives way to keep the total). `python -m bench PART …` runs single parts."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import capacity, legacy_import, load, memory, pipeline, real_shape, tick_scaling, tick_select, webhook
from bench.common import ROOT, machine

Row = tuple[str, str, str]
# A part returns rows for the results table, or a markdown section of its own.
PARTS: dict[str, Callable[[Path], list[Row] | str]] = {
    "webhook": webhook.run,
    "tick-select": tick_select.run,
    "tick-scaling": tick_scaling.run,
    "pipeline": pipeline.run,
    "memory": memory.run,
    "load": load.run,
    "legacy-import": legacy_import.run,
    "capacity": capacity.run,
    "real-shape": real_shape.run,
}
BUDGET_S = 1470  # `make bench` stays within 25 minutes
MACHINERY = (
    "The `pipeline` and `load` rows measure the machinery only: the send pause, the continuation delay and "
    "the start jitter are set to 0 and the emulated Telegram answers at once, so they are the ceiling of the "
    "code paths, not the capacity at Telegram's pace (that is the next section)."
)


def table(rows: list[Row]) -> str:
    lines = ["| measurement | value: median (min–max) | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    chosen = argv or list(PARTS)
    unknown = [name for name in chosen if name not in PARTS]
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    logs = ROOT / "artifacts" / "bench"
    # The real-shape run has a fixed length (its intervals are production's); the compressed capacity
    # run, the last of the others, shortens its longest window to leave it that (bench/capacity.py).
    fixed = real_shape.expected_s() if "real-shape" in chosen else 0
    os.environ.setdefault("BENCH_DEADLINE", str(time.time() + BUDGET_S - fixed))
    if chosen == list(PARTS):
        length = f"about {BUDGET_S / 60:.0f} minutes, of which the real-shape run ~{fixed / 60:.0f}"
    else:
        length = f"the real-shape run alone ~{fixed / 60:.0f} minutes" if fixed else "a few minutes"
    print(f"bench: {', '.join(chosen)}: {length} (only the full run rewrites docs/benchmarks.md)",
          file=sys.stderr, flush=True)
    rows: list[Row] = []
    sections: list[str] = []
    started = time.monotonic()
    for name in chosen:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        part_started = time.monotonic()
        produced = PARTS[name](logs)
        if isinstance(produced, str):
            sections.append(produced)
        else:
            rows += produced
        print(f"bench: {name} done in {time.monotonic() - part_started:.0f} s", file=sys.stderr, flush=True)
    result = table(rows)
    print(result)
    for text in sections:
        print("\n" + text)
    env = "\n".join(f"- {k}: {v}" for k, v in machine().items())
    doc = (
        "# Benchmarks\n\n"
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make bench` ({time.monotonic() - started:.0f} s; "
        f"parts: {', '.join(chosen)}). Comparisons were measured side by side in this one run; "
        "values are median (min–max) over the repetitions stated in each module of `bench/`.\n\n"
        f"## Machine\n\n{env}\n\n## Results\n\n{MACHINERY}\n\n{result}\n"
        + "".join(f"\n{text}" for text in sections)
    )
    if chosen == list(PARTS):
        (ROOT / "docs").mkdir(exist_ok=True)
        (ROOT / "docs" / "benchmarks.md").write_text(doc + _notes())
    return 0


def _notes() -> str:
    notes = ROOT / "bench" / "NOTES.md"
    return "\n" + notes.read_text() if notes.exists() else ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
