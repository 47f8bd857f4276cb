"""The broadcast config of each user."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Config


async def get(conn: AsyncConnection, owner_id: int) -> Config | None:
    cur = conn.cursor(row_factory=class_row(Config))
    await cur.execute("SELECT * FROM configs WHERE owner_id = %(id)s", {"id": owner_id})
    return await cur.fetchone()


async def set_message(conn: AsyncConnection, owner_id: int, message_id: int) -> None:
    """A new message applies from the next cycle; the schedule is not reset (docs/runtime.md,
    "Interval lower bound")."""
    await conn.execute(
        """
        INSERT INTO configs (owner_id, message_id) VALUES (%(id)s, %(m)s)
        ON CONFLICT (owner_id) DO UPDATE SET message_id = EXCLUDED.message_id, updated_at = now()
        """,
        {"id": owner_id, "m": message_id},
    )


async def activate(conn: AsyncConnection, owner_id: int, interval_minutes: int, first_run_at: datetime) -> None:
    """Start (or keep running with a new interval). A running config keeps its clock: the new
    interval applies from the next cycle, and a restart never lets a cycle start early."""
    await conn.execute(
        """
        UPDATE configs SET
            interval_minutes = %(iv)s,
            next_run_at = CASE
                WHEN active THEN next_run_at
                WHEN last_scheduled_at IS NULL THEN %(first)s
                ELSE GREATEST(%(first)s, last_scheduled_at + make_interval(mins => %(iv)s))
            END,
            active = true,
            updated_at = now()
        WHERE owner_id = %(id)s
        """,
        {"id": owner_id, "iv": interval_minutes, "first": first_run_at},
    )


async def deactivate(conn: AsyncConnection, owner_id: int) -> bool:
    """Returns whether it was active."""
    cur = await conn.execute(
        """
        UPDATE configs SET active = false, updated_at = now()
        WHERE owner_id = %(id)s AND active
        RETURNING owner_id
        """,
        {"id": owner_id},
    )
    return await cur.fetchone() is not None


async def set_pile_up(conn: AsyncConnection, owner_id: int, mode: str) -> None:
    """The broadcast's no-pile-up rule (core/pile_up.py); it applies from the next batch."""
    await conn.execute(
        """
        INSERT INTO configs (owner_id, pile_up) VALUES (%(id)s, %(mode)s)
        ON CONFLICT (owner_id) DO UPDATE SET pile_up = EXCLUDED.pile_up, updated_at = now()
        """,
        {"id": owner_id, "mode": mode},
    )


async def set_interval(conn: AsyncConnection, owner_id: int, interval_minutes: int) -> None:
    """Remember the interval without starting (something else the start needs is still missing)."""
    await conn.execute(
        """
        INSERT INTO configs (owner_id, interval_minutes) VALUES (%(id)s, %(iv)s)
        ON CONFLICT (owner_id) DO UPDATE SET interval_minutes = EXCLUDED.interval_minutes, updated_at = now()
        """,
        {"id": owner_id, "iv": interval_minutes},
    )
