"""System notices sent to users: each cause (with its reference) at most once."""

from __future__ import annotations

from psycopg import AsyncConnection


async def claim(conn: AsyncConnection, owner_id: int, cause: str, ref: str = "") -> bool:
    """True for the one caller that may send this notice; every later call gets False."""
    cur = await conn.execute(
        """
        INSERT INTO notices (owner_id, cause, ref) VALUES (%(id)s, %(cause)s, %(ref)s)
        ON CONFLICT DO NOTHING
        """,
        {"id": owner_id, "cause": cause, "ref": ref},
    )
    return cur.rowcount == 1


async def forget(conn: AsyncConnection, owner_id: int, cause: str, ref: str = "") -> None:
    """Undo a claim whose message could not be delivered, so a later attempt may send it."""
    await conn.execute(
        "DELETE FROM notices WHERE owner_id = %(id)s AND cause = %(cause)s AND ref = %(ref)s",
        {"id": owner_id, "cause": cause, "ref": ref},
    )
