"""A user's groups; the `selected` ones are the list the broadcast posts to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Group


class GroupFacts(Protocol):
    """What is stored of a group the account can post to: the shape of `userbot.gateway.GroupInfo`
    (a protocol: db/ depends on no gateway code)."""

    @property
    def chat_id(self) -> int: ...

    @property
    def title(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def access_hash(self) -> int | None: ...


async def count_selected(conn: AsyncConnection, owner_id: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM groups WHERE owner_id = %(id)s AND selected", {"id": owner_id}
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def last_post_floor(conn: AsyncConnection, owner_id: int) -> datetime | None:
    """The earliest last post among the selected groups, or None when some selected group has none
    (it may be posted at once). Per-group spacing keeps every group an interval after its last post,
    so no round posts before this + the interval (docs/runtime.md, "Interval lower bound")."""
    cur = await conn.execute(
        """
        SELECT CASE WHEN bool_or(last_sent_at IS NULL) THEN NULL ELSE min(last_sent_at) END
        FROM groups WHERE owner_id = %(id)s AND selected
        """,
        {"id": owner_id},
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def selected_page(conn: AsyncConnection, owner_id: int, *, offset: int, limit: int) -> list[Group]:
    cur = conn.cursor(row_factory=class_row(Group))
    await cur.execute(
        """
        SELECT * FROM groups WHERE owner_id = %(id)s AND selected
        ORDER BY lower(title), chat_id OFFSET %(offset)s LIMIT %(limit)s
        """,
        {"id": owner_id, "offset": offset, "limit": limit},
    )
    return await cur.fetchall()


async def selected_ids(conn: AsyncConnection, owner_id: int) -> set[int]:
    cur = await conn.execute(
        "SELECT chat_id FROM groups WHERE owner_id = %(id)s AND selected", {"id": owner_id}
    )
    return {row[0] for row in await cur.fetchall()}


async def select(conn: AsyncConnection, owner_id: int, groups: Sequence[GroupFacts],
                 account_of: Mapping[int, int] | None = None) -> int:
    """Put these groups in the list (refreshing title, kind, access hash); returns how many were not
    in it before. `account_of` names the account each one is posted from: a group already in the list
    keeps the account it has (the user's choice, or the first that brought it), one with none takes
    this one."""
    if not groups:
        return 0
    account_of = account_of or {}
    async with conn.transaction():
        before = await selected_ids(conn, owner_id)
        async with conn.cursor() as cur:
            await cur.executemany(
                """
                INSERT INTO groups (owner_id, chat_id, title, kind, access_hash, selected, account_id)
                VALUES (%(owner)s, %(chat)s, %(title)s, %(kind)s, %(hash)s, true, %(account)s)
                ON CONFLICT (owner_id, chat_id) DO UPDATE SET
                    title = EXCLUDED.title, kind = EXCLUDED.kind, access_hash = EXCLUDED.access_hash,
                    -- re-adding a group the runtime took out gives it a fresh start
                    fail_streak = CASE WHEN groups.selected THEN groups.fail_streak ELSE 0 END,
                    selected = true, account_id = COALESCE(groups.account_id, EXCLUDED.account_id)
                """,
                [
                    {"owner": owner_id, "chat": g.chat_id, "title": g.title, "kind": g.kind, "hash": g.access_hash,
                     "account": account_of.get(g.chat_id)}
                    for g in groups
                ],
            )
    return len({g.chat_id for g in groups} - before)


async def adopt(conn: AsyncConnection, owner_id: int, account_id: int) -> int:
    """Give the owner's groups that have no account (theirs was logged out) this one; returns how many."""
    cur = await conn.execute(
        """
        UPDATE groups SET account_id = %(account)s
        WHERE owner_id = %(owner)s AND account_id IS NULL
          AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = %(account)s AND a.owner_id = %(owner)s)
        """,
        {"owner": owner_id, "account": account_id},
    )
    return cur.rowcount


async def get(conn: AsyncConnection, owner_id: int, chat_id: int) -> Group | None:
    cur = conn.cursor(row_factory=class_row(Group))
    await cur.execute("SELECT * FROM groups WHERE owner_id = %(owner)s AND chat_id = %(chat)s",
                      {"owner": owner_id, "chat": chat_id})
    return await cur.fetchone()


async def set_account(conn: AsyncConnection, owner_id: int, chat_id: int, account_id: int) -> bool:
    """Post to this group of the owner from this account of theirs; False when either is not theirs."""
    cur = await conn.execute(
        """
        UPDATE groups SET account_id = %(account)s
        WHERE owner_id = %(owner)s AND chat_id = %(chat)s
          AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = %(account)s AND a.owner_id = %(owner)s)
        """,
        {"owner": owner_id, "chat": chat_id, "account": account_id},
    )
    return cur.rowcount == 1


async def selected_by_account(conn: AsyncConnection, owner_id: int) -> dict[int | None, int]:
    """How many groups of the list each account posts to (None: groups with no account)."""
    cur = await conn.execute(
        "SELECT account_id, count(*) FROM groups WHERE owner_id = %(id)s AND selected GROUP BY account_id",
        {"id": owner_id},
    )
    return {(int(a) if a is not None else None): int(n) for a, n in await cur.fetchall()}


async def deselect(conn: AsyncConnection, owner_id: int, chat_id: int) -> Group | None:
    """Take one group out of the list; None when it was not in it."""
    cur = conn.cursor(row_factory=class_row(Group))
    await cur.execute(
        """
        UPDATE groups SET selected = false
        WHERE owner_id = %(id)s AND chat_id = %(chat)s AND selected
        RETURNING *
        """,
        {"id": owner_id, "chat": chat_id},
    )
    return await cur.fetchone()


async def deselect_all(conn: AsyncConnection, owner_id: int) -> int:
    cur = await conn.execute(
        "UPDATE groups SET selected = false WHERE owner_id = %(id)s AND selected", {"id": owner_id}
    )
    return cur.rowcount
