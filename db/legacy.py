"""What the import of the older bot's data writes into tgcast, set-wise (docs/migrating.md).

Rows arrive planned (`legacy.plan`); each kind goes in with one COPY into a temporary table and one
INSERT … ON CONFLICT from it, so ten thousand users with two hundred thousand groups are a handful
of statements. The whole import is one transaction: it lands entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.types.json import Jsonb


@dataclass(frozen=True, slots=True)
class ImportState:
    fingerprints: dict[tuple[str, str], str]
    message_ids: dict[str, int]  # legacy message key -> tgcast message id
    users: frozenset[int]
    imported_users: frozenset[int]
    active_tg_users: dict[int, int]


async def state(conn: AsyncConnection) -> ImportState:
    cur = await conn.execute("SELECT kind, legacy_id, fingerprint, target_id, owner_id FROM legacy_rows")
    fingerprints: dict[tuple[str, str], str] = {}
    message_ids: dict[str, int] = {}
    imported: set[int] = set()
    for kind, legacy_id, print_, target_id, owner_id in await cur.fetchall():
        fingerprints[(kind, legacy_id)] = print_
        if kind == "message" and target_id is not None:
            message_ids[legacy_id] = int(target_id)
        if kind == "user":
            imported.add(int(owner_id))
    cur = await conn.execute("SELECT user_id FROM bot_users")
    users = frozenset(int(r[0]) for r in await cur.fetchall())
    cur = await conn.execute(
        "SELECT tg_user_id, owner_id FROM accounts WHERE status = 'active' AND tg_user_id IS NOT NULL")
    active = {int(tg): int(owner) for tg, owner in await cur.fetchall()}
    return ImportState(fingerprints, message_ids, users, frozenset(imported), active)


async def _copy(conn: AsyncConnection, table: str, columns: Sequence[tuple[str, str]],
                rows: Iterable[Sequence[Any]]) -> None:
    """A temporary table (dropped at commit) filled with COPY."""
    await conn.execute(sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns)))
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns))
    async with conn.cursor().copy(copy_sql) as copy:
        for row in rows:
            await copy.write_row(row)


async def upsert_users(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(user_id, username, first_name, last_name, status, expires_at, created_at)"""
    if not rows:
        return
    await _copy(conn, "legacy_users", [("user_id", "bigint"), ("username", "text"), ("first_name", "text"),
                                       ("last_name", "text"), ("status", "text"), ("expires_at", "timestamptz"),
                                       ("created_at", "timestamptz")], rows)
    # profile_refreshed_at in the past: the names are refreshed from Telegram on the next message.
    await conn.execute(
        """
        INSERT INTO bot_users (user_id, username, first_name, last_name, status, expires_at, created_at,
                               profile_refreshed_at, granted_notified_at)
        SELECT user_id, username, first_name, last_name, status, expires_at, created_at, 'epoch',
               CASE WHEN status = 'active' THEN now() END
        FROM legacy_users
        ON CONFLICT (user_id) DO UPDATE SET
            username = COALESCE(EXCLUDED.username, bot_users.username),
            first_name = CASE WHEN EXCLUDED.first_name <> '' THEN EXCLUDED.first_name ELSE bot_users.first_name END,
            last_name = COALESCE(EXCLUDED.last_name, bot_users.last_name),
            status = EXCLUDED.status, expires_at = EXCLUDED.expires_at, updated_at = now()
        """
    )


async def upsert_accounts(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> dict[str, int]:
    """(legacy_id, owner_id, tg_user_id, phone, session_enc, status, flood_until) -> {legacy id: account id}.
    An older row imported before updates the account it became; a new one becomes a new account, in
    the order given (the user's current account first, so it comes first in tgcast too)."""
    if not rows:
        return {}
    cur = await conn.execute(
        """
        SELECT r.legacy_id, a.id FROM legacy_rows r JOIN accounts a ON a.id = r.target_id
        WHERE r.kind = 'account' AND r.legacy_id = ANY(%(ids)s)
        """,
        {"ids": [r[0] for r in rows]},
    )
    known = {str(legacy_id): int(account_id) for legacy_id, account_id in await cur.fetchall()}
    fresh = [r[0] for r in rows if r[0] not in known]
    if fresh:
        cur = await conn.execute("SELECT nextval('accounts_id_seq') FROM generate_series(1, %(n)s)",
                                 {"n": len(fresh)})
        known.update(zip(fresh, (int(r[0]) for r in await cur.fetchall()), strict=True))
    await _copy(conn, "legacy_accounts", [("id", "bigint"), ("owner_id", "bigint"), ("tg_user_id", "bigint"),
                                          ("phone", "text"), ("session_enc", "bytea"), ("status", "text"),
                                          ("flood_until", "timestamptz")],
                ((known[r[0]], *r[1:]) for r in rows))
    await conn.execute(
        """
        INSERT INTO accounts (id, owner_id, tg_user_id, phone, session_enc, status, flood_until, pause_reason)
        SELECT id, owner_id, tg_user_id, phone, session_enc, status, flood_until,
               CASE WHEN flood_until IS NOT NULL THEN 'flood' END
        FROM legacy_accounts
        ON CONFLICT (id) DO UPDATE SET
            tg_user_id = EXCLUDED.tg_user_id, phone = EXCLUDED.phone, session_enc = EXCLUDED.session_enc,
            status = EXCLUDED.status, login_id = nextval('account_logins'),
            flood_until = GREATEST(accounts.flood_until, EXCLUDED.flood_until),
            pause_reason = COALESCE(EXCLUDED.pause_reason, accounts.pause_reason), updated_at = now()
        """
    )
    return {r[0]: known[r[0]] for r in rows}


async def assign_groups(conn: AsyncConnection, owner_ids: Sequence[int]) -> None:
    """The imported users' groups that have no account get the user's first active one."""
    if not owner_ids:
        return
    await conn.execute(
        """
        UPDATE groups g SET account_id = f.id
        FROM (SELECT DISTINCT ON (owner_id) owner_id, id FROM accounts
              WHERE owner_id = ANY(%(ids)s) AND status = 'active' ORDER BY owner_id, id) f
        WHERE g.owner_id = f.owner_id AND g.account_id IS NULL
        """,
        {"ids": list(owner_ids)},
    )


async def upsert_groups(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(owner_id, chat_id, title, kind, selected, last_sent_at). A later post time never moves back."""
    if not rows:
        return
    await _copy(conn, "legacy_groups", [("owner_id", "bigint"), ("chat_id", "bigint"), ("title", "text"),
                                        ("kind", "text"), ("selected", "boolean"),
                                        ("last_sent_at", "timestamptz")], rows)
    await conn.execute(
        """
        INSERT INTO groups (owner_id, chat_id, title, kind, selected, last_sent_at)
        SELECT owner_id, chat_id, title, kind, selected, last_sent_at FROM legacy_groups
        ON CONFLICT (owner_id, chat_id) DO UPDATE SET
            title = EXCLUDED.title, selected = EXCLUDED.selected,
            kind = CASE WHEN groups.kind = 'forum' THEN groups.kind ELSE EXCLUDED.kind END,
            last_sent_at = GREATEST(groups.last_sent_at, EXCLUDED.last_sent_at)
        """
    )


async def insert_messages(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """(owner_id, text, entities, content_hash, created_at) -> their new ids, in order."""
    if not rows:
        return []
    cur = await conn.execute("SELECT nextval('messages_id_seq') FROM generate_series(1, %(n)s)", {"n": len(rows)})
    ids = [int(r[0]) for r in await cur.fetchall()]
    await _copy(conn, "legacy_messages", [("id", "bigint"), ("owner_id", "bigint"), ("text", "text"),
                                          ("entities", "jsonb"), ("content_hash", "text"),
                                          ("created_at", "timestamptz")],
                ((i, o, t, Jsonb(e), h, c) for i, (o, t, e, h, c) in zip(ids, rows, strict=True)))
    await conn.execute(
        """
        INSERT INTO messages (id, owner_id, kind, text, entities, content_hash, created_at)
        SELECT id, owner_id, 'text', text, entities, content_hash, created_at FROM legacy_messages
        """
    )
    return ids


async def upsert_configs(conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(owner_id, message_id, interval_minutes, active, next_run_at). An imported running broadcast
    never starts earlier than a time already stored (a re-import after tgcast scheduled it)."""
    if not rows:
        return
    await _copy(conn, "legacy_configs", [("owner_id", "bigint"), ("message_id", "bigint"),
                                         ("interval_minutes", "integer"), ("active", "boolean"),
                                         ("next_run_at", "timestamptz")], rows)
    await conn.execute(
        """
        INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at)
        SELECT owner_id, message_id, interval_minutes, active, next_run_at FROM legacy_configs
        ON CONFLICT (owner_id) DO UPDATE SET
            message_id = COALESCE(EXCLUDED.message_id, configs.message_id),
            interval_minutes = COALESCE(EXCLUDED.interval_minutes, configs.interval_minutes),
            active = EXCLUDED.active,
            next_run_at = CASE WHEN EXCLUDED.active
                               THEN GREATEST(EXCLUDED.next_run_at, configs.next_run_at) END,
            updated_at = now()
        """
    )


async def record_rows(conn: AsyncConnection, rows: Sequence[tuple[str, str, int, int | None, str]]) -> None:
    """(kind, legacy_id, owner_id, target_id, fingerprint) of every row read, written or unchanged."""
    if not rows:
        return
    await _copy(conn, "legacy_seen", [("kind", "text"), ("legacy_id", "text"), ("owner_id", "bigint"),
                                      ("target_id", "bigint"), ("fingerprint", "text")], rows)
    await conn.execute(
        """
        INSERT INTO legacy_rows (kind, legacy_id, owner_id, target_id, fingerprint)
        SELECT kind, legacy_id, owner_id, target_id, fingerprint FROM legacy_seen
        ON CONFLICT (kind, legacy_id) DO UPDATE SET
            owner_id = EXCLUDED.owner_id, target_id = COALESCE(EXCLUDED.target_id, legacy_rows.target_id),
            fingerprint = EXCLUDED.fingerprint, imported_at = now()
        WHERE legacy_rows.fingerprint IS DISTINCT FROM EXCLUDED.fingerprint
        """
    )


async def record_run(conn: AsyncConnection, *, source: str, flavour: str, dry_run: bool, report: dict[str, Any],
                     started_at: datetime) -> None:
    await conn.execute(
        """
        INSERT INTO legacy_runs (source, flavour, dry_run, report, started_at)
        VALUES (%(source)s, %(flavour)s, %(dry)s, %(report)s, %(started)s)
        """,
        {"source": source, "flavour": flavour, "dry": dry_run, "report": Jsonb(report), "started": started_at},
    )


async def has_dry_run(conn: AsyncConnection, source: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM legacy_runs WHERE source = %(s)s LIMIT 1", {"s": source})
    return await cur.fetchone() is not None


# ---- the online check (`--verify-sessions`) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportedAccount:
    account_id: int
    owner_id: int
    legacy_id: str
    session_enc: bytes
    tg_user_id: int | None
    login_id: int  # the login whose session is checked: a newer one is another session


async def accounts_to_verify(conn: AsyncConnection, *, again: bool = False) -> list[ImportedAccount]:
    """Imported accounts still active in tgcast whose session was not (or, with `again`, was) checked."""
    cur = await conn.execute(
        """
        SELECT a.id, a.owner_id, r.legacy_id, a.session_enc, a.tg_user_id, a.login_id
        FROM legacy_rows r JOIN accounts a ON a.id = r.target_id
        WHERE r.kind = 'account' AND a.status = 'active' AND (%(again)s OR r.verified_at IS NULL)
        ORDER BY a.owner_id, a.id
        """,
        {"again": again},
    )
    return [ImportedAccount(int(i), int(o), str(lid), bytes(enc), tg, int(login))
            for i, o, lid, enc, tg, login in await cur.fetchall()]


async def mark_verified(conn: AsyncConnection, account_id: int, owner_id: int, legacy_id: str,
                        tg_user_id: int) -> int | None:
    """Store the Telegram id the session answered with; returns the owner that already holds that
    Telegram account (another user actively, or this user under another of their accounts: the older
    data had it twice), in which case nothing is stored."""
    cur = await conn.execute(
        """
        SELECT owner_id FROM accounts
        WHERE tg_user_id = %(tg)s AND id <> %(id)s
          AND ((status = 'active' AND owner_id <> %(owner)s) OR owner_id = %(owner)s)
        """,
        {"tg": tg_user_id, "owner": owner_id, "id": account_id},
    )
    other = await cur.fetchone()
    if other is not None:
        return int(other[0])
    await conn.execute("UPDATE accounts SET tg_user_id = %(tg)s, updated_at = now() WHERE id = %(id)s",
                       {"tg": tg_user_id, "id": account_id})
    await conn.execute(
        "UPDATE legacy_rows SET verified_at = now() WHERE kind = 'account' AND legacy_id = %(id)s",
        {"id": legacy_id},
    )
    return None


async def refresh_groups(conn: AsyncConnection, owner_id: int, account_id: int,
                         found: Sequence[tuple[int, str, str, int | None]]) -> tuple[int, int]:
    """Fill in what only Telegram knows of an imported user's groups (access hash, forum): `found` is
    the account's writable groups (chat_id, title, kind, access_hash). A selected group of this account
    it can no longer post in is unselected. Returns (refreshed, unselected)."""
    refreshed = 0
    for chat_id, title, kind, access_hash in found:
        cur = await conn.execute(
            """
            UPDATE groups SET access_hash = %(hash)s, kind = %(kind)s, title = %(title)s
            WHERE owner_id = %(owner)s AND chat_id = %(chat)s
            """,
            {"owner": owner_id, "chat": chat_id, "hash": access_hash, "kind": kind, "title": title},
        )
        refreshed += cur.rowcount
    cur = await conn.execute(
        """
        UPDATE groups SET selected = false
        WHERE owner_id = %(owner)s AND account_id = %(account)s AND selected AND NOT (chat_id = ANY(%(chats)s))
        """,
        {"owner": owner_id, "account": account_id, "chats": [c for c, *_ in found]},
    )
    return refreshed, cur.rowcount
