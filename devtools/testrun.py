"""`make test`: make sure PostgreSQL and Redis answer (starting private ones if not), then run pytest.

The whole suite runs in TEST_WORKERS processes (pytest-xdist, default 3): most of its time is spent
waiting on real worker processes, pauses and timeouts, not on CPU, so even a 2-core box runs it about
twice as fast. Each process has its own database (`tgcast_test_<pid>`), Redis db
(`devtools.services.claim_redis_db`), fake Bot API and sandbox ports, and browser. A run naming its
tests (`devtools.testrun tests/test_x.py -q`, while developing) stays in one process unless given `-n`.
"""

from __future__ import annotations

import os
import sys

from devtools.services import ensure_postgres, ensure_redis, env_or_none

DEFAULT_WORKERS = 3


def pytest_args(argv: list[str], workers: int) -> list[str]:
    """The suite in `workers` processes, unless the caller chose (`-n`, `-p no:xdist`) or named tests."""
    chose = any(a == "-n" or a.startswith(("-n=", "--numprocesses", "--dist")) for a in argv)
    chose = chose or "no:xdist" in argv
    named = any(not a.startswith("-") and (a.startswith("tests") or a.endswith(".py") or "::" in a) for a in argv)
    if chose or named or workers <= 1:
        return argv
    # worksteal: the slow tests (real worker processes) are unevenly spread over the files.
    return ["-n", str(workers), "--dist", "worksteal", *argv]


def main(argv: list[str]) -> int:
    os.environ["TEST_DATABASE_URL"] = ensure_postgres(env_or_none("TEST_DATABASE_URL"))
    redis_url = ensure_redis(env_or_none("TEST_REDIS_URL"))
    if env_or_none("TEST_REDIS_URL") is None:
        # Tests own a whole Redis db (they flush it); keep clear of the db a dev service uses.
        redis_url = redis_url.rsplit("/", 1)[0] + "/15"
    os.environ["TEST_REDIS_URL"] = redis_url
    import pytest

    code = pytest.main(pytest_args(argv, int(os.environ.get("TEST_WORKERS", DEFAULT_WORKERS))))
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
