"""Connection pools and one-off connections for the web and worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool


async def _configure(conn: AsyncConnection) -> None:
    # Handlers use short explicit transactions; autocommit keeps idle connections out of a transaction.
    await conn.set_autocommit(True)
    # No JIT compilation: every statement here is short, and PostgreSQL compiles a plan whose estimate
    # passes jit_above_cost (the tick's owner states for 1,000 configs: ~37 ms of compiling for ~45 ms of
    # work, measured) before running it, on every call.
    await conn.execute("SET jit = off")


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


@contextlib.asynccontextmanager
async def durable_commits(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """Within the block, the commits of this (pooled, autocommit) connection wait for the WAL to reach
    the disk, whatever the pool set (`relaxed_commit`): for work whose every commit must survive a crash
    of PostgreSQL. The connection's own setting is restored after; should that fail (a connection
    broken, or a cancel), it goes back to the pool committing durably, which is only slower."""
    cur = await conn.execute("SHOW synchronous_commit")
    row = await cur.fetchone()
    before = str(row[0]) if row else "on"
    await conn.execute("SET synchronous_commit = on")
    try:
        yield conn
    finally:
        if before != "on":
            with contextlib.suppress(psycopg.Error):
                await conn.execute("SELECT set_config('synchronous_commit', %s, false)", (before,))
