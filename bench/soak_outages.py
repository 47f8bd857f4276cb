"""The soak's long outages, beside its random crashes: a Redis stopped (kept or emptied), PostgreSQL
stopped for a minute, a worker process frozen, an account whose requests Telegram stops answering.

Each is one plain function of the thing it takes away and for how long, so the tests can run each on
a small case; `OUTAGE_PLAN` puts them on the fault phase's timeline, one after another (what each does
to the run is then readable in the logs and the table), while the random faults go on around them.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from redis.asyncio import Redis

from bench.soak_services import PrivatePostgres, PrivateRedis
from userbot.fake import FakeTelegram

Kind = Literal["hang", "redis-kept", "redis-empty", "postgres", "freeze"]


@dataclass(frozen=True, slots=True)
class Planned:
    at_s: float  # from the start of the fault phase
    kind: Kind
    seconds: float


# Sequential, so that each outage's effects are its own. The hang runs under the others (it is one
# account's, and ends by itself). The 120 s Redis stop is longer than every TTL the runtime relies on
# (claims 30 s, liveness 30 s, locks); the 45 s one is longer than a claim but shorter than a lease
# plus the settle of a cycle.
OUTAGE_PLAN: tuple[Planned, ...] = (
    Planned(20, "hang", 180),
    Planned(40, "redis-kept", 45),
    Planned(115, "freeze", 40),
    Planned(185, "postgres", 60),
    Planned(275, "redis-empty", 120),
)


def plan_for(fault_s: float, plan: tuple[Planned, ...] = OUTAGE_PLAN) -> list[Planned]:
    """The planned outages that end inside the fault phase (a shortened run leaves the last ones out)."""
    return [p for p in plan if p.at_s + p.seconds <= fault_s]


@dataclass
class OutageLog:
    """What was taken away, when (unix seconds) and for how long."""

    redis: list[tuple[float, float, bool]] = field(default_factory=list)  # (stopped, started, data kept)
    postgres: list[tuple[float, float]] = field(default_factory=list)
    freezes: list[tuple[int, float, float]] = field(default_factory=list)  # (pid, stopped, continued)
    hangs: list[tuple[int, float, float]] = field(default_factory=list)  # (tg user id, from, until)

    def windows(self) -> list[tuple[float, float]]:
        """Every stretch a service was away (a 503 or a failed tick is expected inside one)."""
        return [(a, b) for a, b, _ in self.redis] + list(self.postgres)


def stop_redis_for(redis: PrivateRedis, seconds: float, *, keep_data: bool) -> tuple[float, float]:
    """The server stopped (not flushed) and started again on its port after `seconds`."""
    stopped = time.time()
    redis.stop(keep_data=keep_data)
    time.sleep(max(0.0, stopped + seconds - time.time()))
    redis.start()
    return stopped, time.time()


def stop_postgres_for(pg: PrivatePostgres, seconds: float) -> tuple[float, float]:
    """A fast stop (clients disconnected, as in a failover), started again after `seconds`."""
    stopped = time.time()
    pg.stop("fast")
    time.sleep(max(0.0, stopped + seconds - time.time()))
    pg.start()
    return stopped, time.time()


def wait_for_a_post(fake_redis_url: str, prefix: str, limit_s: float, poll_s: float = 0.005) -> bool:
    """Until "Telegram" accepts a post (its counter moves), at most `limit_s`: an outage started right
    then meets that post's record waiting in the worker's group commit. False if none came."""
    from redis import Redis as SyncRedis

    key = f"{prefix}posts"
    with SyncRedis.from_url(fake_redis_url) as redis:
        seen = redis.get(key)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            time.sleep(poll_s)
            if redis.get(key) != seen:
                return True
    return False


def freeze_for(
    proc: subprocess.Popen[bytes], seconds: float, wake: threading.Event | None = None
) -> tuple[float, float]:
    """SIGSTOP, then SIGCONT after `seconds` (or sooner if `wake` is set): every thread of the process
    stands still, its sockets stay open, its Redis keys and claims age meanwhile."""
    stopped = time.time()
    proc.send_signal(signal.SIGSTOP)
    try:
        if wake is not None:
            wake.wait(seconds)
        else:
            time.sleep(seconds)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
    return stopped, time.time()


def process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat: "T" while stopped."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


async def _on_network(fake_redis_url: str, prefix: str, step: str, *args: int | float) -> int:
    redis = Redis.from_url(fake_redis_url)
    try:
        net = FakeTelegram(redis, prefix=prefix)
        result = await getattr(net, step)(*args)
        return int(result or 0)
    finally:
        await redis.aclose()


def hang_account(fake_redis_url: str, prefix: str, tg_user_id: int, seconds: float) -> tuple[float, float]:
    """The emulator stops answering the account's requests (they still reach it: a send is posted) for
    `seconds`; the hang lapses by itself."""
    at = time.time()
    asyncio.run(_on_network(fake_redis_url, prefix, "hang", tg_user_id, seconds))
    return at, at + seconds


def process_died(fake_redis_url: str, prefix: str, pid: int) -> int:
    """Tell the emulator a worker process is gone: the OS closed its sockets, so its connections end."""
    return asyncio.run(_on_network(fake_redis_url, prefix, "process_died", pid))
