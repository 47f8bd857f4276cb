"""Bot users and their access rows."""

from __future__ import annotations

from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import BotUser


async def get(conn: AsyncConnection, user_id: int) -> BotUser | None:
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute("SELECT * FROM bot_users WHERE user_id = %(id)s", {"id": user_id})
    return await cur.fetchone()


async def create_pending(
    conn: AsyncConnection,
    user_id: int,
    *,
    username: str | None,
    first_name: str,
    last_name: str | None,
    language_code: str | None,
) -> BotUser | None:
    """Insert a pending row; returns it only to the one caller that created it (idempotent)."""
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute(
        """
        INSERT INTO bot_users (user_id, username, first_name, last_name, language_code, status, expires_at)
        VALUES (%(id)s, %(username)s, %(first)s, %(last)s, %(lang)s, 'pending', now())
        ON CONFLICT (user_id) DO NOTHING
        RETURNING *
        """,
        {"id": user_id, "username": username, "first": first_name, "last": last_name, "lang": language_code},
    )
    return await cur.fetchone()


async def refresh_profile(
    conn: AsyncConnection,
    user_id: int,
    *,
    username: str | None,
    first_name: str,
    last_name: str | None,
    language_code: str | None,
) -> None:
    await conn.execute(
        """
        UPDATE bot_users SET username = %(username)s, first_name = %(first)s, last_name = %(last)s,
               language_code = %(lang)s, profile_refreshed_at = now(), updated_at = now()
        WHERE user_id = %(id)s
        """,
        {"id": user_id, "username": username, "first": first_name, "last": last_name, "lang": language_code},
    )


async def set_language(conn: AsyncConnection, user_id: int, language: str) -> None:
    await conn.execute(
        "UPDATE bot_users SET language = %(lang)s, updated_at = now() WHERE user_id = %(id)s",
        {"id": user_id, "lang": language},
    )


async def set_access(
    conn: AsyncConnection, user_id: int, *, status: str, expires_at: datetime | None
) -> BotUser:
    """Upsert the access fields (an admin may grant access to someone who never wrote)."""
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute(
        """
        INSERT INTO bot_users (user_id, status, expires_at) VALUES (%(id)s, %(status)s, %(exp)s)
        ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,
            updated_at = now()
        RETURNING *
        """,
        {"id": user_id, "status": status, "exp": expires_at},
    )
    row = await cur.fetchone()
    assert row is not None
    return row
