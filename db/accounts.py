"""Connected Telegram accounts (one per bot user); the session is stored only encrypted."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Account


async def get(conn: AsyncConnection, owner_id: int) -> Account | None:
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute("SELECT * FROM accounts WHERE owner_id = %(id)s", {"id": owner_id})
    return await cur.fetchone()


async def get_active(conn: AsyncConnection, owner_id: int) -> Account | None:
    """The account that counts as "logged in": a revoked session does not."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        "SELECT * FROM accounts WHERE owner_id = %(id)s AND status = 'active'", {"id": owner_id}
    )
    return await cur.fetchone()


async def owners_of_tg_user(conn: AsyncConnection, tg_user_id: int, *, except_owner: int) -> list[int]:
    cur = await conn.execute(
        "SELECT owner_id FROM accounts WHERE tg_user_id = %(tg)s AND owner_id <> %(owner)s",
        {"tg": tg_user_id, "owner": except_owner},
    )
    return [row[0] for row in await cur.fetchall()]


async def store(conn: AsyncConnection, owner_id: int, *, tg_user_id: int, phone: str, session_enc: bytes) -> None:
    """Insert or replace the owner's account (a fresh login clears any pause of the old session)."""
    await conn.execute(
        """
        INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, status)
        VALUES (%(owner)s, %(tg)s, %(phone)s, %(enc)s, 'active')
        ON CONFLICT (owner_id) DO UPDATE SET
            tg_user_id = EXCLUDED.tg_user_id, phone = EXCLUDED.phone, session_enc = EXCLUDED.session_enc,
            status = 'active', flood_until = NULL, pause_reason = NULL, updated_at = now(),
            login_id = nextval('account_logins')
        """,
        {"owner": owner_id, "tg": tg_user_id, "phone": phone, "enc": session_enc},
    )


async def delete(conn: AsyncConnection, owner_id: int) -> Account | None:
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute("DELETE FROM accounts WHERE owner_id = %(id)s RETURNING *", {"id": owner_id})
    return await cur.fetchone()


# ---- the send-batch worker ----------------------------------------------------------------------


async def pause(conn: AsyncConnection, owner_id: int, until: datetime, reason: str) -> None:
    """Account-wide pause asked by Telegram; a shorter wait never shortens a longer one."""
    await conn.execute(
        """
        UPDATE accounts SET flood_until = GREATEST(COALESCE(flood_until, %(until)s), %(until)s),
               pause_reason = %(reason)s, updated_at = now()
        WHERE owner_id = %(id)s
        """,
        {"id": owner_id, "until": until, "reason": reason},
    )


async def revoke(conn: AsyncConnection, owner_id: int, login_id: int) -> bool:
    """The session of this login stopped working (revoked, deactivated); returns whether it was
    active. A newer login of the owner is not touched: it is another session."""
    cur = await conn.execute(
        """
        UPDATE accounts SET status = 'revoked', updated_at = now()
        WHERE owner_id = %(id)s AND login_id = %(login)s AND status = 'active'
        """,
        {"id": owner_id, "login": login_id},
    )
    return cur.rowcount == 1


# ---- key rotation (`tgcast rotate-keys`) ---------------------------------------------------------


async def iter_sessions(
    conn: AsyncConnection, *, batch_size: int = 100
) -> AsyncGenerator[list[tuple[int, bytes]], None]:
    """Every stored (owner_id, session_enc), in batches; each batch is locked in its own transaction,
    which commits when the caller asks for the next one (use with `contextlib.aclosing`, so an error
    rolls the current batch back at once). Keyset paging: rows added meanwhile are not missed."""
    after = -(2**63)
    while True:
        async with conn.transaction():
            cur = await conn.execute(
                """
                SELECT owner_id, session_enc FROM accounts WHERE owner_id > %(after)s
                ORDER BY owner_id LIMIT %(limit)s FOR UPDATE
                """,
                {"after": after, "limit": batch_size},
            )
            rows = [(int(owner), bytes(enc)) for owner, enc in await cur.fetchall()]
            if not rows:
                return
            yield rows
        after = rows[-1][0]


async def update_session(conn: AsyncConnection, owner_id: int, session_enc: bytes) -> None:
    await conn.execute(
        "UPDATE accounts SET session_enc = %(enc)s, updated_at = now() WHERE owner_id = %(id)s",
        {"id": owner_id, "enc": session_enc},
    )
