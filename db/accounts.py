"""Connected Telegram accounts: up to MAX_ACCOUNTS_PER_USER per bot user, the oldest (lowest id) first.
The session is stored only encrypted.

Every lookup a handler makes names the owner as well as the account id: an id from a button is user
input, and an account of another user must never be reachable through it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import class_row

from db.rows import Account


async def list_for_owner(conn: AsyncConnection, owner_id: int) -> list[Account]:
    """The owner's accounts, in the order they were connected (the first one first)."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute("SELECT * FROM accounts WHERE owner_id = %(id)s ORDER BY id", {"id": owner_id})
    return await cur.fetchall()


async def get(conn: AsyncConnection, owner_id: int) -> Account | None:
    """The owner's first account, whatever its state."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute("SELECT * FROM accounts WHERE owner_id = %(id)s ORDER BY id LIMIT 1", {"id": owner_id})
    return await cur.fetchone()


async def get_active(conn: AsyncConnection, owner_id: int) -> Account | None:
    """The owner's first account that counts as "logged in": a revoked session does not."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        "SELECT * FROM accounts WHERE owner_id = %(id)s AND status = 'active' ORDER BY id LIMIT 1", {"id": owner_id}
    )
    return await cur.fetchone()


async def get_owned(conn: AsyncConnection, owner_id: int, account_id: int) -> Account | None:
    """One account of this owner; None for an id that is not theirs."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        "SELECT * FROM accounts WHERE id = %(account)s AND owner_id = %(owner)s",
        {"account": account_id, "owner": owner_id},
    )
    return await cur.fetchone()


async def count(conn: AsyncConnection, owner_id: int) -> int:
    cur = await conn.execute("SELECT count(*) FROM accounts WHERE owner_id = %(id)s", {"id": owner_id})
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def find_own(conn: AsyncConnection, owner_id: int, *, tg_user_id: int, phone: str) -> Account | None:
    """The owner's row of this Telegram account, if they connected it before: by its id, or, for an
    imported session whose id is not known yet, by its phone."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        """
        SELECT * FROM accounts
        WHERE owner_id = %(owner)s AND (tg_user_id = %(tg)s OR (tg_user_id IS NULL AND phone = %(phone)s))
        ORDER BY (tg_user_id IS NULL), id LIMIT 1
        """,
        {"owner": owner_id, "tg": tg_user_id, "phone": phone},
    )
    return await cur.fetchone()


async def others_holding(conn: AsyncConnection, tg_user_id: int, *, except_owner: int) -> list[Account]:
    """Rows of this Telegram account under other bot users."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        "SELECT * FROM accounts WHERE tg_user_id = %(tg)s AND owner_id <> %(owner)s ORDER BY id",
        {"tg": tg_user_id, "owner": except_owner},
    )
    return await cur.fetchall()


async def store(conn: AsyncConnection, owner_id: int, *, tg_user_id: int, phone: str, session_enc: bytes,
                name: str = "") -> int:
    """Store a login: the owner's row of this Telegram account is updated (a fresh login clears any
    pause of the old session), else a new account is added. Returns the account id. The limit on the
    number of accounts is the caller's to check (services/login.py)."""
    known = await find_own(conn, owner_id, tg_user_id=tg_user_id, phone=phone)
    params = {"owner": owner_id, "tg": tg_user_id, "phone": phone, "enc": session_enc, "name": name}
    if known is not None:
        await conn.execute(
            """
            UPDATE accounts SET tg_user_id = %(tg)s, phone = %(phone)s, session_enc = %(enc)s, status = 'active',
                   name = CASE WHEN %(name)s <> '' THEN %(name)s ELSE name END,
                   flood_until = NULL, pause_reason = NULL, updated_at = now(), login_id = nextval('account_logins')
            WHERE id = %(id)s
            """,
            {**params, "id": known.id},
        )
        return known.id
    cur = await conn.execute(
        """
        INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, status, name)
        VALUES (%(owner)s, %(tg)s, %(phone)s, %(enc)s, 'active', %(name)s)
        RETURNING id
        """,
        params,
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def delete(conn: AsyncConnection, owner_id: int, account_id: int) -> Account | None:
    """Remove one account of this owner (its groups keep their place with no account)."""
    cur = conn.cursor(row_factory=class_row(Account))
    await cur.execute(
        "DELETE FROM accounts WHERE id = %(account)s AND owner_id = %(owner)s RETURNING *",
        {"account": account_id, "owner": owner_id},
    )
    return await cur.fetchone()


# ---- the send-batch worker ----------------------------------------------------------------------


async def pause(conn: AsyncConnection, account_id: int, until: datetime, reason: str) -> None:
    """Account-wide pause asked by Telegram; a shorter wait never shortens a longer one."""
    await conn.execute(
        """
        UPDATE accounts SET flood_until = GREATEST(COALESCE(flood_until, %(until)s), %(until)s),
               pause_reason = %(reason)s, updated_at = now()
        WHERE id = %(id)s
        """,
        {"id": account_id, "until": until, "reason": reason},
    )


async def revoke(conn: AsyncConnection, account_id: int, login_id: int) -> bool:
    """The session of this login stopped working (revoked, deactivated); returns whether it was
    active. A newer login of the account is not touched: it is another session."""
    cur = await conn.execute(
        """
        UPDATE accounts SET status = 'revoked', updated_at = now()
        WHERE id = %(id)s AND login_id = %(login)s AND status = 'active'
        """,
        {"id": account_id, "login": login_id},
    )
    return cur.rowcount == 1


# ---- key rotation (`tgcast rotate-keys`) ---------------------------------------------------------


async def iter_sessions(
    conn: AsyncConnection, *, batch_size: int = 100
) -> AsyncGenerator[list[tuple[int, int, bytes]], None]:
    """Every stored (account id, owner id, session_enc), in batches; each batch is locked in its own transaction,
    which commits when the caller asks for the next one (use with `contextlib.aclosing`, so an error
    rolls the current batch back at once). Keyset paging: rows added meanwhile are not missed."""
    after = -(2**63)
    while True:
        async with conn.transaction():
            cur = await conn.execute(
                """
                SELECT id, owner_id, session_enc FROM accounts WHERE id > %(after)s
                ORDER BY id LIMIT %(limit)s FOR UPDATE
                """,
                {"after": after, "limit": batch_size},
            )
            rows = [(int(account_id), int(owner), bytes(enc)) for account_id, owner, enc in await cur.fetchall()]
            if not rows:
                return
            yield rows
        after = rows[-1][0]


async def update_session(conn: AsyncConnection, account_id: int, session_enc: bytes) -> None:
    await conn.execute(
        "UPDATE accounts SET session_enc = %(enc)s, updated_at = now() WHERE id = %(id)s",
        {"id": account_id, "enc": session_enc},
    )
