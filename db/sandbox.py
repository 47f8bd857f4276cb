"""Read-only queries for the sandbox page: which cycle posted a message, and the connected accounts.

Never the session: the page shows who is connected and their pause, nothing a login could reuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(slots=True)
class PostCycle:
    random_id: int
    chat_id: int
    owner_id: int
    cycle_id: int
    seq: int
    scheduled_at: datetime
    delivery_status: str
    retry: int
    media_id: int | None  # the photo or video the cycle's message carries (the page shows it)


@dataclass(slots=True)
class SandboxAccount:
    owner_id: int
    tg_user_id: int
    phone: str
    status: str
    flood_until: datetime | None
    pause_reason: str | None


async def post_cycles(conn: AsyncConnection, random_ids: list[int]) -> list[PostCycle]:
    """The deliveries that carried these random ids (a send's idempotency key), with their cycle.

    Deliveries of finished cycles are pruned when the next cycle starts, so old posts may be missing."""
    if not random_ids:
        return []
    cur = conn.cursor(row_factory=class_row(PostCycle))
    await cur.execute(
        """
        SELECT d.random_id, d.chat_id, d.owner_id, c.id AS cycle_id, c.seq, c.scheduled_at,
               d.status AS delivery_status, d.retry, m.media_id
        FROM deliveries d JOIN cycles c ON c.id = d.cycle_id LEFT JOIN messages m ON m.id = c.message_id
        WHERE d.random_id = ANY(%(ids)s)
        """,
        {"ids": random_ids},
    )
    return await cur.fetchall()


@dataclass(slots=True)
class CycleAt:
    cycle_id: int
    seq: int
    owner_id: int
    scheduled_at: datetime
    media_id: int | None
    finished: bool


async def cycle_posting_at(conn: AsyncConnection, tg_user_id: int, at: datetime) -> CycleAt | None:
    """The cycle of the bot user connected with this Telegram account that was sending at `at`: a
    post's cycle once its delivery row is pruned. A post comes after its cycle's start and before
    its finish."""
    cur = conn.cursor(row_factory=class_row(CycleAt))
    await cur.execute(
        """
        SELECT c.id AS cycle_id, c.seq, c.owner_id, c.scheduled_at, m.media_id,
               c.finished_at IS NOT NULL AS finished
        FROM accounts a JOIN cycles c ON c.owner_id = a.owner_id LEFT JOIN messages m ON m.id = c.message_id
        WHERE a.tg_user_id = %(tg)s AND c.started_at <= %(at)s AND (c.finished_at IS NULL OR c.finished_at >= %(at)s)
        ORDER BY c.id DESC LIMIT 1
        """,
        {"tg": tg_user_id, "at": at},
    )
    return await cur.fetchone()


async def accounts(conn: AsyncConnection, limit: int = 50) -> list[SandboxAccount]:
    cur = conn.cursor(row_factory=class_row(SandboxAccount))
    await cur.execute(
        """
        SELECT owner_id, tg_user_id, phone, status, flood_until, pause_reason
        FROM accounts ORDER BY updated_at DESC LIMIT %(limit)s
        """,
        {"limit": limit},
    )
    return await cur.fetchall()
