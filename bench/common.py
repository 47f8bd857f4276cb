"""What every benchmark shares: the environment it runs in, process stats, and summary statistics."""

from __future__ import annotations

import atexit
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from devtools.services import claim_redis_db, ensure_postgres, ensure_redis, env_or_none, redis_binary, with_db

ROOT = Path(__file__).resolve().parent.parent
SESSION_KEY = "Q8kc3ryTr3mH0C8rcn1-6ydrM0Y_gkDmKcbkfxk-6SU="
TICK_TOKEN = "bench-tick-token-0123456789"
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
BOT_TOKEN = "123456:BENCH-token-for-the-fake-bot-api-000"


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def fmt(self, digits: int = 2) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def machine() -> dict[str, str]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    pg = "?"
    try:
        with psycopg.connect(services()["server"]) as conn:
            pg = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        pass
    import aiogram
    import redis
    import rq
    import telethon

    return {
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "os": platform.platform(),
        "postgresql": pg,
        "postgresql autovacuum": _autovacuum_note.get("note", "on"),
        "redis-py / rq": f"{redis.__version__} / {rq.__version__}",
        "aiogram / telethon": f"{aiogram.__version__} / {telethon.__version__}",
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


_services: dict[str, str] = {}
_autovacuum_note: dict[str, str] = {}


def _autovacuum_as_in_production(server: str) -> None:
    """Production servers vacuum by themselves (PostgreSQL's default), and the deliveries queue depends
    on it (docs/runtime.md, "Queue upkeep"). A development box's server may have it off; measured so,
    a long run measures the dead rows piling up, not the service. So a run turns it on (ALTER SYSTEM and
    a reload: it needs no restart) and puts the server's own setting back when it ends."""
    with psycopg.connect(server, autocommit=True) as conn:
        row = conn.execute("SELECT setting, sourcefile FROM pg_settings WHERE name = 'autovacuum'").fetchone()
        if row is None or row[0] == "on":
            return
        own_auto = str(row[1] or "").endswith("postgresql.auto.conf")
        try:
            conn.execute("ALTER SYSTEM SET autovacuum = on")
            conn.execute("SELECT pg_reload_conf()")
        except psycopg.Error as exc:
            _autovacuum_note["note"] = f"off (the server's setting; could not turn it on: {type(exc).__name__})"
            print("bench: PostgreSQL's autovacuum is off and cannot be turned on here; long runs will slow down",
                  file=sys.stderr)
            return
    _autovacuum_note["note"] = "on for the runs (the server has it off; turned on as production runs it)"

    def restore() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET autovacuum = off" if own_auto else "ALTER SYSTEM RESET autovacuum")
            conn.execute("SELECT pg_reload_conf()")

    atexit.register(restore)


def services() -> dict[str, str]:
    if not _services:
        _services["server"] = ensure_postgres(env_or_none("BENCH_DATABASE_URL"))
        _autovacuum_as_in_production(_services["server"])
        redis_server = ensure_redis(env_or_none("BENCH_REDIS_URL"))
        while True:
            url, release = claim_redis_db(redis_server)
            atexit.register(release)
            others = _clients_of(url)
            if not others:
                break
            # A process whose run ended without it (a leaked worker) still uses this db: its RQ worker
            # would take our jobs and its scheduler our scheduler lock. Keep the claim, so that the
            # next claim finds another db.
            print(f"bench: Redis db {url.rsplit('/', 1)[1]} still has {others} clients of another run; "
                  "taking another", file=sys.stderr)
        _services["redis"] = url
    return _services


_telegram: dict[str, str | int] = {}


def telegram_redis() -> tuple[str, int | None]:
    """The emulated Telegram's own Redis server (URL, its pid): a private `redis-server` on a free port,
    started once per benchmark process and stopped at its exit. The emulator keeps Telegram's side in
    Redis (each send is a script that checks membership, slow mode and the random id and appends the
    post); in production that work is Telegram's servers', so the capacity runs keep it out of our Redis,
    where it was a third to a half of Redis's CPU per delivery, and report it apart. The box still runs
    it, so it still competes for the same two cores. Where no redis-server can be started, the shared
    server is used (pid None) and the report says so."""
    if not _telegram:
        binary = redis_binary()
        if binary is None:
            return services()["redis"], None
        port = free_port()
        proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--logfile", ""], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        def stop_it() -> None:
            proc.terminate()
            proc.wait(10)

        atexit.register(stop_it)
        url = f"redis://127.0.0.1:{port}/0"
        from redis import Redis

        for _ in range(100):
            try:
                with Redis.from_url(url) as r:
                    r.ping()
                break
            except Exception:
                time.sleep(0.05)
        _telegram.update(url=url, pid=proc.pid)
    return str(_telegram["url"]), int(_telegram["pid"])


def flush_telegram() -> None:
    """The emulated Telegram's Redis, emptied for a run (a no-op where it is the shared server: the
    shared db is flushed by `flush_redis`)."""
    from redis import Redis

    url, pid = telegram_redis()
    if pid is not None:
        with Redis.from_url(url) as r:
            r.flushdb()


def _clients_of(url: str) -> int:
    """Connections to this Redis db other than the asking one."""
    from redis import Redis

    db = int(url.rsplit("/", 1)[1])
    with Redis.from_url(url) as r:
        me = r.client_id()
        return sum(1 for c in r.client_list() if int(c.get("db", -1)) == db and int(c["id"]) != me)


def fresh_database(name: str) -> str:
    """An empty, migrated database for one benchmark."""
    from db.migrate import migrate

    server = services()["server"]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_db(server, name)
    migrate(url)
    return url


def base_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE", "REDIS"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=services()["redis"],
        SESSION_KEYS=SESSION_KEY,
        TICK_TOKEN=TICK_TOKEN,
        WEBHOOK_SECRET=WEBHOOK_SECRET,
        BOT_TOKEN=BOT_TOKEN,
        GATEWAY="fake",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def flush_redis() -> None:
    """An empty Redis db for a run, as a Redis that has kept its state, not one that has just lost it:
    the connection claims' marker (userbot/claims.py) is set a day back. Otherwise every account's first
    connect of a run would wait out CLAIM_STATE_LOSS_WAIT_S (30 s), which production pays once after
    losing Redis's state, and the benchmarks would measure that in their windows (seen: a compressed
    run's first cycles started sending 19 s late, and ran into their next ones)."""
    from redis import Redis

    from core.settings import Settings
    from userbot.claims import state_marker_key

    with Redis.from_url(services()["redis"]) as r:
        r.flushdb()
        seconds, micros = r.time()
        since_ms = seconds * 1000 + micros // 1000 - 86_400_000
        r.set(state_marker_key(str(Settings.model_fields["redis_prefix"].default)), since_ms)


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, RSS MiB) of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    stop_all([proc], timeout)


def stop_all(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 10) -> None:
    """SIGTERM to every process at once, then SIGKILL to those still there after `timeout`: the
    processes shut down side by side rather than one after the other."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
