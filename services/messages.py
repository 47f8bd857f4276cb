"""Capturing a broadcast message: media fetched from the Bot API and stored for the worker, the
message made current and appended to the history (unless it repeats the last entry)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from psycopg import AsyncConnection

from core.content import content_hash
from db import configs, messages


@dataclass(frozen=True, slots=True)
class Captured:
    kind: Literal["text", "photo", "video"]
    text: str  # the text, or the caption
    entities: list[dict[str, Any]]  # Bot API entities exactly as received (UTF-16 offsets)
    file_id: str | None = None
    file_name: str = ""
    mime_type: str = ""
    data: bytes = b""


async def save_current(conn: AsyncConnection, owner_id: int, captured: Captured) -> int:
    """Store and make current; returns the message id. An identical repeat of the latest history entry
    reuses it, so re-sending the same ad does not grow the history."""
    media_sha = hashlib.sha256(captured.data).hexdigest() if captured.kind != "text" else None
    digest = content_hash(captured.kind, captured.text, captured.entities, media_sha)
    async with conn.transaction():
        last = await messages.latest(conn, owner_id)
        if last is not None and last.content_hash == digest:
            message_id = last.id
        else:
            media_id = None
            if captured.kind != "text":
                assert captured.file_id is not None and media_sha is not None
                media_id = await messages.add_media(
                    conn, owner_id, kind=captured.kind, bot_file_id=captured.file_id,
                    file_name=captured.file_name, mime_type=captured.mime_type, data=captured.data,
                    sha256=media_sha,
                )
            message_id = await messages.add(
                conn, owner_id, kind=captured.kind, text=captured.text, entities=captured.entities,
                media_id=media_id, content_hash=digest,
            )
        await configs.set_message(conn, owner_id, message_id)
    return message_id


async def make_current(conn: AsyncConnection, owner_id: int, message_id: int) -> bool:
    """Use a history entry again; False when it is not this user's (ids come from callbacks)."""
    async with conn.transaction():
        if await messages.get_owned(conn, owner_id, message_id) is None:
            return False
        await configs.set_message(conn, owner_id, message_id)
    return True
