"""Broadcast messages (the history) and their media. Deleting is soft: cycles keep what they sent;
the tick removes soft-deleted messages no cycle summary refers to any more, then unreferenced media
(`db.tick.prune`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from db.rows import Media, Message

# The history keeps a user's newest entries (ten pages of the history screen); older ones leave it
# when a new one is added, so the rows a user holds stay bounded however often the ad is changed.
HISTORY_KEEP = 50


@dataclass(slots=True)
class HistoryEntry:
    id: int
    kind: str
    text: str
    created_at: datetime
    cycles: int  # cycles that sent this message
    sent: int  # successful group sends over those cycles


async def add_media(
    conn: AsyncConnection, owner_id: int, *, kind: str, bot_file_id: str, file_name: str, mime_type: str,
    data: bytes, sha256: str,
) -> int:
    cur = await conn.execute(
        """
        INSERT INTO media (owner_id, kind, bot_file_id, file_name, mime_type, size, sha256, data)
        VALUES (%(owner)s, %(kind)s, %(fid)s, %(name)s, %(mime)s, %(size)s, %(sha)s, %(data)s)
        RETURNING id
        """,
        {"owner": owner_id, "kind": kind, "fid": bot_file_id, "name": file_name, "mime": mime_type,
         "size": len(data), "sha": sha256, "data": data},
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def get_media(conn: AsyncConnection, media_id: int) -> Media | None:
    cur = conn.cursor(row_factory=class_row(Media))
    await cur.execute("SELECT * FROM media WHERE id = %(id)s", {"id": media_id})
    return await cur.fetchone()


async def latest(conn: AsyncConnection, owner_id: int) -> Message | None:
    cur = conn.cursor(row_factory=class_row(Message))
    await cur.execute(
        """
        SELECT * FROM messages WHERE owner_id = %(id)s AND deleted_at IS NULL
        ORDER BY id DESC LIMIT 1
        """,
        {"id": owner_id},
    )
    return await cur.fetchone()


async def add(
    conn: AsyncConnection, owner_id: int, *, kind: str, text: str, entities: list[dict[str, Any]],
    media_id: int | None, content_hash: str,
) -> int:
    """Append to the history. Entries past the newest `HISTORY_KEEP` are soft-deleted (the config's
    current message excepted), like a delete from the history screen."""
    cur = await conn.execute(
        """
        INSERT INTO messages (owner_id, kind, text, entities, media_id, content_hash)
        VALUES (%(owner)s, %(kind)s, %(text)s, %(entities)s, %(media)s, %(hash)s)
        RETURNING id
        """,
        {"owner": owner_id, "kind": kind, "text": text, "entities": Jsonb(entities), "media": media_id,
         "hash": content_hash},
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        """
        UPDATE messages SET deleted_at = now()
        WHERE owner_id = %(owner)s AND deleted_at IS NULL
          AND id <= (SELECT id FROM messages WHERE owner_id = %(owner)s AND deleted_at IS NULL
                     ORDER BY id DESC OFFSET %(keep)s LIMIT 1)
          AND id IS DISTINCT FROM (SELECT message_id FROM configs WHERE owner_id = %(owner)s)
        """,
        {"owner": owner_id, "keep": HISTORY_KEEP},
    )
    return int(row[0])


async def get_owned(conn: AsyncConnection, owner_id: int, message_id: int) -> Message | None:
    """The message only if this user owns it and it is not deleted: ids in callbacks can be forged."""
    cur = conn.cursor(row_factory=class_row(Message))
    await cur.execute(
        "SELECT * FROM messages WHERE id = %(m)s AND owner_id = %(id)s AND deleted_at IS NULL",
        {"id": owner_id, "m": message_id},
    )
    return await cur.fetchone()


async def count(conn: AsyncConnection, owner_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM messages WHERE owner_id = %(id)s AND deleted_at IS NULL", {"id": owner_id}
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def history_page(conn: AsyncConnection, owner_id: int, *, offset: int, limit: int) -> list[HistoryEntry]:
    cur = conn.cursor(row_factory=class_row(HistoryEntry))
    await cur.execute(
        """
        SELECT m.id, m.kind, m.text, m.created_at,
               count(c.id)::int AS cycles, coalesce(sum(c.sent), 0)::int AS sent
        FROM messages m LEFT JOIN cycles c ON c.message_id = m.id AND c.owner_id = m.owner_id
        WHERE m.owner_id = %(id)s AND m.deleted_at IS NULL
        GROUP BY m.id ORDER BY m.id DESC OFFSET %(offset)s LIMIT %(limit)s
        """,
        {"id": owner_id, "offset": offset, "limit": limit},
    )
    return await cur.fetchall()


async def usage(conn: AsyncConnection, message_id: int) -> tuple[int, int]:
    """(cycles that sent it, successful group sends)."""
    cur = await conn.execute(
        "SELECT count(*)::int, coalesce(sum(sent), 0)::int FROM cycles WHERE message_id = %(m)s",
        {"m": message_id},
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def soft_delete(conn: AsyncConnection, owner_id: int, message_id: int) -> bool:
    cur = await conn.execute(
        """
        UPDATE messages SET deleted_at = now()
        WHERE id = %(m)s AND owner_id = %(id)s AND deleted_at IS NULL
        RETURNING id
        """,
        {"id": owner_id, "m": message_id},
    )
    return await cur.fetchone() is not None
