"""Bot users and their access rows."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from psycopg import AsyncConnection, sql
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
               language_code = COALESCE(%(lang)s, language_code), profile_refreshed_at = now(),
               updated_at = now()
        WHERE user_id = %(id)s
        """,
        {"id": user_id, "username": username, "first": first_name, "last": last_name, "lang": language_code},
    )


async def set_language_code(conn: AsyncConnection, user_id: int, language_code: str) -> None:
    """The Telegram language code of the person's latest update; notices sent later speak it too."""
    await conn.execute(
        """
        UPDATE bot_users SET language_code = %(lang)s, updated_at = now()
        WHERE user_id = %(id)s AND language_code IS DISTINCT FROM %(lang)s
        """,
        {"id": user_id, "lang": language_code},
    )


async def remember_admin_language_code(conn: AsyncConnection, user_id: int, language_code: str) -> None:
    """A super admin without a row: their updates' language code, for the notices sent to them."""
    await conn.execute(
        """
        INSERT INTO admin_languages (user_id, language_code) VALUES (%(id)s, %(lang)s)
        ON CONFLICT (user_id) DO UPDATE SET language_code = EXCLUDED.language_code, updated_at = now()
        WHERE admin_languages.language_code IS DISTINCT FROM EXCLUDED.language_code
        """,
        {"id": user_id, "lang": language_code},
    )


@dataclass(slots=True)
class PersonLanguage:
    language: str | None
    language_code: str | None


async def language_of(conn: AsyncConnection, user_id: int) -> PersonLanguage | None:
    """What is known of a person's language (for `core.i18n.person_language`): their row's, else, for
    a super admin without one, the code their updates carried; None when nothing is."""
    cur = conn.cursor(row_factory=class_row(PersonLanguage))
    await cur.execute(
        """
        SELECT language, language_code FROM bot_users WHERE user_id = %(id)s
        UNION ALL
        SELECT NULL, language_code FROM admin_languages
        WHERE user_id = %(id)s AND NOT EXISTS (SELECT 1 FROM bot_users WHERE user_id = %(id)s)
        """,
        {"id": user_id},
    )
    return await cur.fetchone()


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


# ---- access administration -------------------------------------------------------------------


class UserFilter(StrEnum):
    all = "all"
    requested = "requested"
    confirmed = "confirmed"
    banned = "banned"


# Users are people, and Telegram's user ids are positive. Rows under other ids (admin buttons with
# forged ids could once create them) are nobody's: they stay out of every count and list, and out of
# an announcement's audience, so its count is the number of users it visits.
_PEOPLE = "user_id > 0"
# Fixed fragments chosen by the enum, never built from input. "Requested" is everyone waiting for an
# admin: never granted (pending) or granted once and run out (active, expired).
_WHERE = {
    view: f"{_PEOPLE} AND ({where})" for view, where in {
        UserFilter.all: "true",
        UserFilter.requested: "status = 'pending' OR (status = 'active' AND expires_at <= now())",
        UserFilter.confirmed: "status = 'active' AND (expires_at IS NULL OR expires_at > now())",
        UserFilter.banned: "status = 'banned'",
    }.items()
}
_ORDER = {
    UserFilter.all: "created_at DESC, user_id DESC",
    UserFilter.requested: "expires_at DESC NULLS LAST, user_id DESC",
    UserFilter.confirmed: "expires_at DESC NULLS FIRST, user_id DESC",
    UserFilter.banned: "updated_at DESC, user_id DESC",
}


@dataclass(frozen=True, slots=True)
class UserCounts:
    total: int
    pending: int  # pending or expired: the "requests"
    active: int
    banned: int


async def counts(conn: AsyncConnection) -> UserCounts:
    cur = await conn.execute(
        f"""
        SELECT count(*) FILTER (WHERE {_WHERE[UserFilter.all]}),
               count(*) FILTER (WHERE {_WHERE[UserFilter.requested]}),
               count(*) FILTER (WHERE {_WHERE[UserFilter.confirmed]}),
               count(*) FILTER (WHERE {_WHERE[UserFilter.banned]})
        FROM bot_users
        """
    )
    row = await cur.fetchone()
    assert row is not None
    return UserCounts(*(int(v) for v in row))


async def count_filtered(conn: AsyncConnection, view: UserFilter) -> int:
    cur = await conn.execute(sql.SQL("SELECT count(*) FROM bot_users WHERE {}").format(sql.SQL(_WHERE[view])))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def page_filtered(conn: AsyncConnection, view: UserFilter, *, offset: int, limit: int) -> list[BotUser]:
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute(
        sql.SQL("SELECT * FROM bot_users WHERE {} ORDER BY {} OFFSET %(offset)s LIMIT %(limit)s").format(
            sql.SQL(_WHERE[view]), sql.SQL(_ORDER[view])
        ),
        {"offset": offset, "limit": limit},
    )
    return await cur.fetchall()


async def lock(conn: AsyncConnection, user_id: int) -> BotUser | None:
    """The row, locked until the end of the caller's transaction; None (and nothing written) when
    there is none: two admins pressing at once are applied one after the other, each seeing the
    other's result."""
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute("SELECT * FROM bot_users WHERE user_id = %(id)s FOR UPDATE", {"id": user_id})
    return await cur.fetchone()


async def lock_or_create(conn: AsyncConnection, user_id: int) -> BotUser:
    """As `lock`, the row created pending if missing (an admin may grant or ban someone who never wrote)."""
    await conn.execute(
        """
        INSERT INTO bot_users (user_id, status, expires_at) VALUES (%(id)s, 'pending', now())
        ON CONFLICT (user_id) DO NOTHING
        """,
        {"id": user_id},
    )
    row = await lock(conn, user_id)
    assert row is not None
    return row


async def update_access(
    conn: AsyncConnection, user_id: int, *, status: str, expires_at: datetime | None,
    granted_notified_at: datetime | None,
) -> BotUser:
    cur = conn.cursor(row_factory=class_row(BotUser))
    await cur.execute(
        """
        UPDATE bot_users SET status = %(status)s, expires_at = %(exp)s, granted_notified_at = %(notified)s,
               updated_at = now()
        WHERE user_id = %(id)s
        RETURNING *
        """,
        {"id": user_id, "status": status, "exp": expires_at, "notified": granted_notified_at},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def allowed_ids_after(conn: AsyncConnection, after_id: int, limit: int) -> list[int]:
    """Allowed users in id order from a resume point (the announcement job walks them in chunks)."""
    cur = await conn.execute(
        f"""
        SELECT user_id FROM bot_users WHERE user_id > %(after)s AND ({_WHERE[UserFilter.confirmed]})
        ORDER BY user_id LIMIT %(limit)s
        """,
        {"after": after_id, "limit": limit},
    )
    return [int(r[0]) for r in await cur.fetchall()]


# ---- super admins listed by username -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminUsernames:
    usernames: list[str]  # every username this id was resolved under, whether still listed or not
    resolved_now: str | None  # the username this call resolved to the id, if any (first sight)


async def admin_usernames(conn: AsyncConnection, user_id: int, *, seen_as: str | None = None) -> AdminUsernames:
    """The usernames `user_id` was resolved under. With `seen_as` (a lower-case username the caller
    checked against ADMIN_USERNAMES), first records that this id holds it, unless an earlier id
    already does: first seen wins. One round trip either way (this runs on every update)."""
    cur = await conn.execute(
        """
        WITH seen AS (
            INSERT INTO admin_usernames (username, user_id)
            SELECT %(name)s::text, %(id)s WHERE %(name)s::text IS NOT NULL
            ON CONFLICT (username) DO NOTHING
            RETURNING username
        )
        SELECT username, false FROM admin_usernames WHERE user_id = %(id)s
        UNION ALL
        SELECT username, true FROM seen
        """,
        {"id": user_id, "name": seen_as},
    )
    rows = await cur.fetchall()
    return AdminUsernames(sorted({str(r[0]) for r in rows}), next((str(r[0]) for r in rows if r[1]), None))


async def resolved_admin_ids(conn: AsyncConnection, usernames: Collection[str]) -> list[int]:
    """The ids the given usernames were resolved to (usernames never seen have none yet)."""
    if not usernames:
        return []
    cur = await conn.execute(
        "SELECT DISTINCT user_id FROM admin_usernames WHERE username = ANY(%(names)s) ORDER BY user_id",
        {"names": sorted(usernames)},
    )
    return [int(r[0]) for r in await cur.fetchall()]
