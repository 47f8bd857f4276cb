"""Admin announcements: one row per announcement, carrying the job's resume point and counters."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Announcement


async def create(conn: AsyncConnection, *, admin_id: int, from_chat_id: int, source_message_id: int,
                 total: int) -> Announcement:
    cur = conn.cursor(row_factory=class_row(Announcement))
    await cur.execute(
        """
        INSERT INTO announcements (admin_id, from_chat_id, source_message_id, total)
        VALUES (%(admin)s, %(chat)s, %(mid)s, %(total)s)
        RETURNING *
        """,
        {"admin": admin_id, "chat": from_chat_id, "mid": source_message_id, "total": total},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: AsyncConnection, announcement_id: int) -> Announcement | None:
    cur = conn.cursor(row_factory=class_row(Announcement))
    await cur.execute("SELECT * FROM announcements WHERE id = %(id)s", {"id": announcement_id})
    return await cur.fetchone()


async def set_progress_message(conn: AsyncConnection, announcement_id: int, message_id: int) -> None:
    await conn.execute(
        "UPDATE announcements SET progress_message_id = %(mid)s WHERE id = %(id)s",
        {"id": announcement_id, "mid": message_id},
    )


async def start(conn: AsyncConnection, announcement_id: int, total: int) -> Announcement | None:
    """Mark it running; a fresh start takes the current audience size, a resumed run keeps its own.
    None when it is already done (a repeated job does nothing)."""
    cur = conn.cursor(row_factory=class_row(Announcement))
    await cur.execute(
        """
        UPDATE announcements SET
            total = CASE WHEN status = 'queued' AND last_user_id = 0 THEN %(total)s ELSE total END,
            status = 'running'
        WHERE id = %(id)s AND status <> 'done'
        RETURNING *
        """,
        {"id": announcement_id, "total": total},
    )
    return await cur.fetchone()


async def save_progress(conn: AsyncConnection, announcement_id: int, *, last_user_id: int, delivered: int,
                        failed: int, blocked: int) -> None:
    await conn.execute(
        """
        UPDATE announcements SET last_user_id = %(last)s, delivered = %(d)s, failed = %(f)s, blocked = %(b)s
        WHERE id = %(id)s
        """,
        {"id": announcement_id, "last": last_user_id, "d": delivered, "f": failed, "b": blocked},
    )


async def finish(conn: AsyncConnection, announcement_id: int) -> Announcement | None:
    """Returns the row only to the one caller that finished it (the report is sent once). The total
    becomes the users it visited (users granted or run out during the run move the first count)."""
    cur = conn.cursor(row_factory=class_row(Announcement))
    await cur.execute(
        """
        UPDATE announcements SET status = 'done', finished_at = now(), total = delivered + failed
        WHERE id = %(id)s AND status = 'running'
        RETURNING *
        """,
        {"id": announcement_id},
    )
    return await cur.fetchone()
