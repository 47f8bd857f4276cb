"""Connection pools and one-off connections for the web and worker processes."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


async def _configure(conn: AsyncConnection) -> None:
    # Handlers use short explicit transactions; autocommit keeps idle connections out of a transaction.
    await conn.set_autocommit(True)


async def _configure_relaxed(conn: AsyncConnection) -> None:
    await _configure(conn)
    await conn.execute("SET synchronous_commit = off")


async def open_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 10, relaxed_commit: bool = False,
    check: bool = True,
) -> AsyncConnectionPool:
    """`relaxed_commit` (the send workers): commits return before the WAL reaches the disk. A crash of
    PostgreSQL may then forget the last fraction of a second of outcome writes, never corrupt them; a
    delivery whose "sent" was forgotten goes back to pending when its lease expires and is resent with
    the same random_id, which Telegram de-duplicates. Worth it: one fsync per delivery otherwise
    bounds a worker at a few hundred sends per second."""
    pool = AsyncConnectionPool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        configure=_configure_relaxed if relaxed_commit else _configure,
        # A request waits at most this long for a connection, then fails fast (503) instead of piling up.
        timeout=10,
        # `check` costs a round trip on every checkout. The web checks (a request should not meet a
        # connection PostgreSQL dropped); the send worker checks out per statement, where the check would
        # double its round trips, and a dead connection fails one statement whose lease covers it.
        check=AsyncConnectionPool.check_connection if check else None,
    )
    await pool.open(wait=False)
    return pool
