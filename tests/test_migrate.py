"""Migrations: an empty database gets every table; a second run is a no-op."""

from __future__ import annotations

import os

import psycopg
from psycopg import sql

from db.migrate import migrate, migration_files

EXPECTED_TABLES = {
    "bot_users", "accounts", "groups", "media", "messages", "configs", "cycles", "deliveries",
    "notices", "announcements", "schema_migrations",
}


def test_migrate_empty_database_then_rerun_is_noop() -> None:
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"tgcast_migrate_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(admin)
    params["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
    try:
        first = migrate(url)
        second = migrate(url)
        assert first == [n for n, _ in migration_files()]
        assert second == []
        with psycopg.connect(url) as conn:
            tables = {r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
            indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'")}
        assert EXPECTED_TABLES <= tables
        assert "configs_due" in indexes
        # Only indexes on columns no update changes, so a delivery's status changes are heap-only updates.
        assert {i for i in indexes if i.startswith("deliveries")} == {"deliveries_pkey",
                                                                       "deliveries_cycle_id_chat_id_key"}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_accounts_migrate_in_place() -> None:
    """A deployment with one account per user: each becomes the user's first account, its groups, the
    deliveries of a running round and the import's record of it name that account."""
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"tgcast_migrate_accounts_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    params = psycopg.conninfo.conninfo_to_dict(admin)
    params["dbname"] = name
    url = psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ"
                         " NOT NULL DEFAULT now())")
            for file, text in migration_files():
                if file >= "0011_accounts.sql":
                    break
                conn.execute(text.encode())
                conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (file,))
            for owner in (1, 2):
                conn.execute("INSERT INTO bot_users (user_id, status) VALUES (%s, 'active')", (owner,))
                conn.execute("INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc)"
                             " VALUES (%s, %s, '+1', '\\x00')", (owner, 100 + owner))
                conn.execute("INSERT INTO groups (owner_id, chat_id, title, kind) VALUES (%s, -5, 'g', 'group')",
                             (owner,))
            conn.execute("INSERT INTO messages (owner_id, kind, content_hash) VALUES (1, 'text', 'h')")
            conn.execute("INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at)"
                         " VALUES (1, 1, 1, 5, now(), now())")
            conn.execute("INSERT INTO deliveries (cycle_id, owner_id, chat_id, position, next_attempt_at, random_id)"
                         " VALUES (1, 1, -5, 0, now(), 7)")
            conn.execute("INSERT INTO legacy_rows (kind, legacy_id, owner_id, fingerprint)"
                         " VALUES ('account', 'acc-1', 1, 'f')")
        assert migrate(url)[0] == "0011_accounts.sql"
        with psycopg.connect(url) as conn:
            ids: dict[int, int] = dict(conn.execute("SELECT owner_id, id FROM accounts").fetchall())
            assert sorted(ids) == [1, 2] and len(set(ids.values())) == 2
            assert dict(conn.execute("SELECT owner_id, account_id FROM groups").fetchall()) == ids
            assert conn.execute("SELECT account_id FROM deliveries").fetchone() == (ids[1],)
            assert conn.execute("SELECT target_id FROM legacy_rows").fetchone() == (ids[1],)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
