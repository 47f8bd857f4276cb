"""What every pooled connection is set up with (db/pool.py)."""

from __future__ import annotations

import pytest

from db.pool import open_pool


@pytest.mark.parametrize("relaxed", [False, True])
async def test_pooled_connections_autocommit_without_jit(database_url: str, relaxed: bool) -> None:
    pool = await open_pool(database_url, min_size=1, max_size=1, relaxed_commit=relaxed)
    try:
        async with pool.connection() as conn:
            assert conn.autocommit
            cur = await conn.execute("SELECT current_setting('jit'), current_setting('synchronous_commit')")
            assert await cur.fetchone() == ("off", "off" if relaxed else "on")
    finally:
        await pool.close()
