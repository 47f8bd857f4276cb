"""Connection pools and one-off connections for the web and worker processes."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


async def _configure(conn: AsyncConnection) -> None:
    # Handlers use short explicit transactions; autocommit keeps idle connections out of a transaction.
    await conn.set_autocommit(True)


async def open_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=_configure,
        # A request waits at most this long for a connection, then fails fast (503) instead of piling up.
        timeout=10,
        check=AsyncConnectionPool.check_connection,
    )
    await pool.open(wait=False)
    return pool
