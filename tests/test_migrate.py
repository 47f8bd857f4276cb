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
        assert {"configs_due", "deliveries_due"} <= indexes
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
