"""What an outage of a store looks like to the code above it.

Overload or an outage of PostgreSQL or Redis (no pool connection free in time, the server gone), not a
bug of the request: the web answers 503 for it, so Telegram redelivers the update and the cron calls
/tick again, instead of a 200 and a lost update. It is the one storage failure handled outside db/ —
constraint conflicts are settled inside db/ (ON CONFLICT) — so psycopg's errors are named here rather
than translated into exceptions of tgcast's own.
"""

from __future__ import annotations

from psycopg import OperationalError
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

TRY_LATER: tuple[type[Exception], ...] = (PoolTimeout, OperationalError, RedisError)
