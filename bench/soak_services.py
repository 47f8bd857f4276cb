"""Private PostgreSQL and Redis servers for the soak harness.

The soak restarts PostgreSQL and flushes Redis on purpose, so it never touches the machine's shared
servers (other people's tests run on them): it starts its own on free ports in a temporary directory
and removes them at the end. PostgreSQL's tools refuse to run as root, so they run as the `postgres`
OS user when the harness is root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_pg_user(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


class PrivatePostgres:
    def __init__(self, root: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tgcast-soak-pg-", dir=root))
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run(_as_pg_user([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                    "--auth=trust", "-E", "UTF8"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.start()

    def start(self) -> None:
        # fsync off: durability across OS crashes is not what the soak measures; a fast stop is.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200")
        subprocess.run(_as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                                    "-l", str(self.log), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def database(self, name: str) -> str:
        from db.migrate import migrate

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
        migrate(url)
        return url

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    """A redis-server of the soak's own. It snapshots nothing by itself (`--save ""`): `stop` decides
    whether the data survives the outage (a dump written at shutdown, loaded at the next start, as a
    managed failover or a restart with persistence keeps it) or not (a restart without persistence)."""

    def __init__(self, root: Path, name: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("the soak needs a redis-server binary (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = root / f"redis-{name}.log"
        self.dump = root / f"redis-{name}.rdb"
        self.dump.unlink(missing_ok=True)  # a previous run's data is not this run's
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dump.parent), "--dbfilename", self.dump.name, "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self._wait()

    def _wait(self) -> None:
        from redis import Redis
        from redis.exceptions import RedisError

        for _ in range(100):
            try:
                with Redis.from_url(self.url, socket_connect_timeout=1) as r:
                    if r.ping():
                        return
            except RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"private redis-server did not start; see {self.log}")

    def stop(self, *, keep_data: bool) -> None:
        """Down until `start`: with `keep_data` the server writes its dump as it shuts down and the next
        start loads it (keys past their TTL meanwhile are gone, as after a failover); without, it comes
        back empty."""
        from redis import Redis
        from redis.exceptions import ConnectionError as RedisConnectionError

        if not keep_data:
            self.dump.unlink(missing_ok=True)
        with Redis.from_url(self.url, socket_timeout=30) as r:
            try:
                r.shutdown(save=keep_data, nosave=not keep_data)
            except RedisConnectionError:
                pass  # the server closes the connection as it exits
        if self.proc is not None:
            self.proc.wait(30)
        if not keep_data:
            self.dump.unlink(missing_ok=True)

    def flushall(self) -> None:
        from redis import Redis

        with Redis.from_url(self.url) as r:
            r.flushall()

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dump.unlink(missing_ok=True)
