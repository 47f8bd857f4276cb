"""What the processes of a benchmark cost, read from /proc (psutil is not a dependency): CPU seconds
per process kind between two moments, resident memory, and how busy the whole box was meanwhile."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (None once it is gone)."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mib(pid: int) -> float:
    """VmRSS of a process in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children(pid: int) -> list[int]:
    """Direct children (a worker's RQ scheduler process, say)."""
    found = []
    for other in _all_pids():
        fields = _stat(other)
        if fields is not None and int(fields[1]) == pid:
            found.append(other)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def postgres_pids(database: str) -> list[int]:
    """The server's own processes (postmaster, checkpointer, WAL writer...) and the backends of
    `database`; backends of other databases (other users of a shared server) are left out."""
    found = []
    for pid in _all_pids():
        if _comm(pid) not in ("postgres", "postmaster"):
            continue
        cmd = _cmdline(pid)
        is_backend = "(" in cmd or "[local]" in cmd
        if not is_backend or f" {database} " in f"{cmd} ":
            found.append(pid)
    return found


def redis_pids() -> list[int]:
    return [pid for pid in _all_pids() if _comm(pid).startswith("redis-server")]


def box_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


@dataclass
class CpuSnapshot:
    per_pid: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (kind, cpu seconds)
    box: tuple[int, int] = (0, 0)

    @classmethod
    def take(cls, kinds: dict[str, list[int]]) -> CpuSnapshot:
        snap = cls(box=box_jiffies())
        for kind, pids in kinds.items():
            for pid in pids:
                used = cpu_seconds(pid)
                if used is not None:
                    snap.per_pid[pid] = (kind, used)
        return snap


def cpu_percent(start: CpuSnapshot, end: CpuSnapshot, seconds: float) -> dict[str, float]:
    """CPU per kind over the interval, in % of one core. A process that appeared meanwhile (a new
    PostgreSQL backend) counts from zero; one that ended meanwhile is not counted."""
    used: dict[str, float] = defaultdict(float)
    for pid, (kind, cpu) in end.per_pid.items():
        before = start.per_pid.get(pid)
        used[kind] += cpu - (before[1] if before else 0.0)
    return {kind: 100 * value / seconds for kind, value in used.items()}


def box_percent(start: CpuSnapshot, end: CpuSnapshot) -> float:
    """How busy the whole box was, in % of one core (2 cores fully busy = 200 %)."""
    busy = end.box[0] - start.box[0]
    total = end.box[1] - start.box[1]
    return 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
