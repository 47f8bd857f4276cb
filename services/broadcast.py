"""Stopping a broadcast, for every cause (stop button, ban, expiry, logout, revoked session)."""

from __future__ import annotations

from psycopg import AsyncConnection

from db import configs, cycles


async def stop(conn: AsyncConnection, owner_id: int) -> tuple[bool, int]:
    """Deactivate the config and cancel what is still pending, in one transaction, so nothing more
    is sent for it (a job that wakes up later finds the config inactive and the deliveries cancelled).
    Returns (was_active, deliveries_cancelled)."""
    async with conn.transaction():
        was_active = await configs.deactivate(conn, owner_id)
        cancelled = await cycles.cancel_open(conn, owner_id)
    return was_active, cancelled
