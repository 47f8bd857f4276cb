"""`make test`: make sure PostgreSQL and Redis answer (starting private ones if not), then run pytest."""

from __future__ import annotations

import os
import sys

from devtools.services import ensure_postgres, ensure_redis, env_or_none


def main(argv: list[str]) -> int:
    os.environ["TEST_DATABASE_URL"] = ensure_postgres(env_or_none("TEST_DATABASE_URL"))
    redis_url = ensure_redis(env_or_none("TEST_REDIS_URL"))
    if env_or_none("TEST_REDIS_URL") is None:
        # Tests own a whole Redis db (they flush it); keep clear of the db a dev service uses.
        redis_url = redis_url.rsplit("/", 1)[0] + "/15"
    os.environ["TEST_REDIS_URL"] = redis_url
    import pytest

    code = pytest.main(argv)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
