"""The older bot's databases, built by the tests: both schemas from their DDL (the Python rewrite's as
SQLAlchemy renders it, the Node version's as Prisma's `db push` creates it), in a database of their
own, filled with the traps an import meets in production.

Times are written as the older bots wrote them: naive UTC (`datetime.utcnow()`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from tests.legacy_session_strings import gramjs_string, pyrogram_string, telethon_string

PYTHON_DDL = """
CREATE TABLE users (id VARCHAR NOT NULL PRIMARY KEY, first_name VARCHAR, last_name VARCHAR, username VARCHAR,
                    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE TABLE telegram_accounts (
    id VARCHAR NOT NULL PRIMARY KEY, user_id VARCHAR NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_string TEXT NOT NULL, phone_number VARCHAR NOT NULL UNIQUE, first_name VARCHAR, last_name VARCHAR,
    username VARCHAR, is_active BOOLEAN NOT NULL, is_flood_wait BOOLEAN NOT NULL,
    flood_wait_until TIMESTAMP WITHOUT TIME ZONE, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE INDEX ix_telegram_accounts_user_id ON telegram_accounts (user_id);
CREATE TABLE user_groups (
    pk SERIAL NOT NULL PRIMARY KEY, id VARCHAR NOT NULL,
    user_id VARCHAR NOT NULL REFERENCES users (id) ON DELETE CASCADE, title VARCHAR NOT NULL, type VARCHAR NOT NULL,
    access_hash VARCHAR, is_active BOOLEAN NOT NULL, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    CONSTRAINT uq_user_group UNIQUE (user_id, id));
CREATE INDEX ix_user_groups_user_id ON user_groups (user_id);
CREATE TABLE broadcast_configs (
    id SERIAL NOT NULL PRIMARY KEY, user_id VARCHAR NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    message TEXT, interval INTEGER, is_active BOOLEAN NOT NULL, last_run_at TIMESTAMP WITHOUT TIME ZONE,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE TABLE sessions (user_id VARCHAR NOT NULL PRIMARY KEY, session_string TEXT NOT NULL,
                       created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
                       updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE TABLE allowed_users (id VARCHAR NOT NULL PRIMARY KEY, username VARCHAR, first_name VARCHAR,
                            last_name VARCHAR, expires_at TIMESTAMP WITHOUT TIME ZONE,
                            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL);
CREATE TABLE sent_messages (id SERIAL NOT NULL PRIMARY KEY, text TEXT NOT NULL, sent_count INTEGER,
                            created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
                            user_id VARCHAR NOT NULL REFERENCES users (id) ON DELETE CASCADE);
CREATE INDEX ix_sent_messages_user_id ON sent_messages (user_id);
CREATE TABLE broadcast_attempts (
    id VARCHAR NOT NULL PRIMARY KEY, user_id VARCHAR NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    campaign_id VARCHAR NOT NULL, target_group_id VARCHAR NOT NULL, assigned_account_id VARCHAR,
    sequence INTEGER NOT NULL, status VARCHAR NOT NULL, retry_count INTEGER NOT NULL, max_retries INTEGER NOT NULL,
    next_attempt_at TIMESTAMP WITHOUT TIME ZONE, started_at TIMESTAMP WITHOUT TIME ZONE,
    sent_at TIMESTAMP WITHOUT TIME ZONE, terminal_reason_code VARCHAR, last_error TEXT,
    idempotency_key VARCHAR NOT NULL UNIQUE, created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    CONSTRAINT uq_campaign_target UNIQUE (campaign_id, target_group_id));
CREATE INDEX ix_ba_user_campaign_status ON broadcast_attempts (user_id, campaign_id, status);
CREATE INDEX ix_ba_campaign_sequence ON broadcast_attempts (campaign_id, sequence);
"""

NODE_DDL = """
CREATE TABLE "User" ("id" TEXT NOT NULL, "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
                     CONSTRAINT "User_pkey" PRIMARY KEY ("id"));
CREATE TABLE "AllowedUser" ("id" TEXT NOT NULL, "username" TEXT, "firstName" TEXT, "lastName" TEXT,
                            "expiresAt" TIMESTAMP(3), "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
                            CONSTRAINT "AllowedUser_pkey" PRIMARY KEY ("id"));
CREATE TABLE "TelegramAccount" (
    "id" TEXT NOT NULL, "userId" TEXT NOT NULL, "sessionString" TEXT NOT NULL, "phoneNumber" TEXT NOT NULL,
    "firstName" TEXT, "isActive" BOOLEAN NOT NULL DEFAULT true, "isFloodWait" BOOLEAN NOT NULL DEFAULT false,
    "floodWaitUntil" TIMESTAMP(3), "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL, CONSTRAINT "TelegramAccount_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "TelegramAccount_phoneNumber_key" ON "TelegramAccount" ("phoneNumber");
CREATE TABLE "UserGroup" ("id" TEXT NOT NULL, "userId" TEXT NOT NULL, "title" TEXT NOT NULL,
                          "type" TEXT NOT NULL DEFAULT 'chat', "accessHash" TEXT,
                          "isActive" BOOLEAN NOT NULL DEFAULT true,
                          "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
                          CONSTRAINT "UserGroup_pkey" PRIMARY KEY ("userId", "id"));
CREATE TABLE "BroadcastConfig" ("id" SERIAL NOT NULL, "userId" TEXT NOT NULL, "message" TEXT, "interval" INTEGER,
                                "isActive" BOOLEAN NOT NULL DEFAULT false, "lastRunAt" TIMESTAMP(3),
                                "updatedAt" TIMESTAMP(3) NOT NULL,
                                CONSTRAINT "BroadcastConfig_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "BroadcastConfig_userId_key" ON "BroadcastConfig" ("userId");
CREATE TABLE "BroadcastAttempt" (
    "id" TEXT NOT NULL, "userId" TEXT NOT NULL, "campaignId" TEXT NOT NULL, "targetGroupId" TEXT NOT NULL,
    "status" TEXT NOT NULL, "nextAttemptAt" TIMESTAMP(3), "startedAt" TIMESTAMP(3), "sentAt" TIMESTAMP(3),
    "terminalReasonCode" TEXT, "idempotencyKey" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP, "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "BroadcastAttempt_pkey" PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "BroadcastAttempt_idempotencyKey_key" ON "BroadcastAttempt" ("idempotencyKey");
CREATE UNIQUE INDEX "BroadcastAttempt_campaignId_targetGroupId_key"
    ON "BroadcastAttempt" ("campaignId", "targetGroupId");
CREATE TABLE "SentMessage" ("id" SERIAL NOT NULL, "userId" TEXT NOT NULL, "text" TEXT NOT NULL,
                            "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
                            CONSTRAINT "SentMessage_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Session" ("userId" TEXT NOT NULL, "sessionString" TEXT NOT NULL,
                        CONSTRAINT "Session_pkey" PRIMARY KEY ("userId"));
"""

# Logical table -> (python table, node table); logical column -> (python column, node column).
_NAMES = {
    "users": ("users", "User"), "access": ("allowed_users", "AllowedUser"),
    "accounts": ("telegram_accounts", "TelegramAccount"), "groups": ("user_groups", "UserGroup"),
    "configs": ("broadcast_configs", "BroadcastConfig"), "attempts": ("broadcast_attempts", "BroadcastAttempt"),
    "history": ("sent_messages", "SentMessage"), "sessions": ("sessions", "Session"),
}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def key(n: int) -> bytes:
    """A known auth key: the conversion is checked byte for byte against it."""
    return hashlib.sha256(str(n).encode()).digest() * 8


@dataclass
class LegacyDb:
    """One older database: `flavour` python or node, in `schema`."""

    admin_url: str
    flavour: str
    schema: str = "public"
    name: str = field(default_factory=lambda: f"tgcast_legacy_{os.getpid()}_{uuid.uuid4().hex[:8]}")

    # -- lifecycle
    def create(self) -> LegacyDb:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        with self.connect() as conn:
            if self.schema != "public":
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            conn.execute((PYTHON_DDL if self.flavour == "python" else NODE_DDL).encode())
        return self

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))

    def connect(self) -> psycopg.Connection:
        params = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        params["dbname"] = self.name
        return psycopg.connect(psycopg.conninfo.make_conninfo(**params), autocommit=True)  # type: ignore[arg-type]

    def url(self, form: str = "plain") -> str:
        """The URL as the older bot's operators wrote it: SQLAlchemy's (`postgresql+asyncpg://`) or
        Prisma's (`?schema=…&connection_limit=…`)."""
        p = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        user = quote(str(p.get("user") or "postgres"), safe="")
        password = f":{quote(str(p['password']), safe='')}" if p.get("password") else ""
        host = str(p.get("host") or "127.0.0.1")
        socket = host.startswith("/")
        netloc = f"{user}{password}@" + ("" if socket else f"{host}:{p.get('port') or 5432}")
        query = [f"host={quote(host, safe='')}", f"port={p.get('port') or 5432}"] if socket else []
        if form == "sqlalchemy":
            return f"postgresql+asyncpg://{netloc}/{self.name}" + ("?" + "&".join(query) if query else "")
        if form == "prisma":
            query += [f"schema={self.schema}", "connection_limit=5", "pool_timeout=10", "pgbouncer=true"]
            return f"postgresql://{netloc}/{self.name}?" + "&".join(query)
        return f"postgresql://{netloc}/{self.name}" + ("?" + "&".join(query) if query else "")

    # -- rows, by logical names (columns given in the Python spelling)
    def insert(self, table: str, **values: Any) -> None:
        index = 0 if self.flavour == "python" else 1
        columns = [c if self.flavour == "python" else camel(c) for c in values]
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            sql.Identifier(self.schema, _NAMES[table][index]), sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)))
        with self.connect() as conn:
            conn.execute(query, list(values.values()))

    def fingerprint(self) -> str:
        """Every row of every table and the catalog of relations: equal before and after means the
        import wrote, created and changed nothing here."""
        digest = hashlib.sha256()
        with self.connect() as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2").fetchall()
            for schema, table in tables:
                digest.update(f"{schema}.{table}".encode())
                rows = conn.execute(sql.SQL("SELECT t::text FROM {} t ORDER BY 1").format(
                    sql.Identifier(schema, table))).fetchall()
                for (row,) in rows:
                    digest.update(row.encode())
            relations = conn.execute("SELECT relname, relkind FROM pg_class WHERE relnamespace NOT IN "
                                     "(SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', "
                                     "'information_schema', 'pg_toast')) ORDER BY 1").fetchall()
            digest.update(repr(relations).encode())
            stats = conn.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
                                 ).fetchone()
            digest.update(repr(stats).encode())
        return digest.hexdigest()


def naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


# ---- a populated older database with every trap -------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    """What the fixture put in, for the assertions."""

    now: datetime
    sessions: dict[str, str]  # legacy account id -> the older string


def seed_python(db: LegacyDb, now: datetime) -> Seeded:
    """The Python rewrite's data (Pyrogram sessions, marked group ids, seconds), with its traps."""
    n = naive(now)
    s = {
        "acc-1": pyrogram_string(2, key(1), 5001),
        "acc-2": pyrogram_string(4, key(2), 5002, layout="old64"),
        "acc-3a": pyrogram_string(2, key(31), 5003),
        "acc-3b": pyrogram_string(2, key(32), 5033),
        "acc-4": "not a session at all",
        "acc-5": telethon_string(2, "149.154.167.51", 443, key(5)),
    }
    # 1001: permanent access, running broadcast, posted 10 s ago (the no-burst case)
    _user(db, "1001", n - timedelta(days=90), expires=None, first="Ali")
    db.insert("accounts", id="acc-1", user_id="1001", session_string=s["acc-1"], phone_number="+998901000001",
              is_active=True, is_flood_wait=False, created_at=n - timedelta(days=80), updated_at=n - timedelta(days=1))
    db.insert("groups", id="-1001000000001", user_id="1001", title="Market 1", type="supergroup", is_active=True,
              created_at=n - timedelta(days=80))
    db.insert("groups", id="-1001000000002", user_id="1001", title="Market 2", type="supergroup", is_active=True,
              created_at=n - timedelta(days=80))
    db.insert("groups", id="-4001", user_id="1001", title="Basic", type="group", is_active=True,
              created_at=n - timedelta(days=80))
    db.insert("configs", user_id="1001", message="**Sale** today, __only__ here", interval=300, is_active=True,
              last_run_at=n - timedelta(seconds=12), updated_at=n - timedelta(days=2))
    for target in ("-1001000000001", "-1001000000002", "-4001"):
        _attempt(db, "1001", "1", target, "sent", sent_at=n - timedelta(seconds=10),
                 started_at=n - timedelta(seconds=11))
    db.insert("history", user_id="1001", text="old text", created_at=n - timedelta(days=5))
    # 1002: active until a date, a 60-second interval (clamped), a flood wait still running, a slow-mode retry
    _user(db, "1002", n - timedelta(days=30), expires=n + timedelta(days=10), first="Vali")
    db.insert("accounts", id="acc-2", user_id="1002", session_string=s["acc-2"], phone_number="+998901000002",
              is_active=True, is_flood_wait=True, flood_wait_until=n + timedelta(minutes=20),
              created_at=n - timedelta(days=20), updated_at=n - timedelta(days=1))
    db.insert("groups", id="-1001000000021", user_id="1002", title="Cars", type="supergroup", is_active=True,
              created_at=n - timedelta(days=20))
    db.insert("configs", user_id="1002", message="", interval=60, is_active=True, last_run_at=n - timedelta(minutes=2),
              updated_at=n - timedelta(days=2))
    db.insert("history", user_id="1002", text="From history", created_at=n - timedelta(days=3))
    _attempt(db, "1002", "2", "-1001000000021", "pending", next_attempt_at=n + timedelta(minutes=7),
             reason="retriable-rate-limit")
    # 1003: expired access but a running broadcast (stopped on import); two accounts (both kept, the newer one first)
    _user(db, "1003", n - timedelta(days=60), expires=n - timedelta(days=3), first="Sardor")
    db.insert("accounts", id="acc-3a", user_id="1003", session_string=s["acc-3a"], phone_number="+998901000003",
              is_active=True, is_flood_wait=False, created_at=n - timedelta(days=50), updated_at=n - timedelta(days=1))
    db.insert("accounts", id="acc-3b", user_id="1003", session_string=s["acc-3b"], phone_number="+998901000033",
              is_active=True, is_flood_wait=False, created_at=n - timedelta(days=10), updated_at=n - timedelta(days=1))
    db.insert("configs", user_id="1003", message="expired seller", interval=600, is_active=True,
              last_run_at=n - timedelta(hours=1), updated_at=n - timedelta(days=4))
    # 1004: pending (expires == created), an unreadable session, an active config with no message anywhere
    created = n - timedelta(days=1)
    _user(db, "1004", created, expires=created + timedelta(microseconds=300), first="Pending")
    db.insert("accounts", id="acc-4", user_id="1004", session_string=s["acc-4"], phone_number="+998901000004",
              is_active=True, is_flood_wait=False, created_at=created, updated_at=created)
    db.insert("configs", user_id="1004", message="", interval=3600, is_active=True, updated_at=created)
    # 1005: in users, no access row (banned: the row was deleted), a Telethon session
    db.insert("users", id="1005", created_at=n - timedelta(days=40))
    db.insert("accounts", id="acc-5", user_id="1005", session_string=s["acc-5"], phone_number="+998901000005",
              is_active=True, is_flood_wait=False, created_at=n - timedelta(days=40), updated_at=n - timedelta(days=2))
    # "@seller": /adduser stored a name instead of an id
    db.insert("access", id="@seller", username="User", expires_at=n + timedelta(days=30), created_at=n)
    return Seeded(now, s)


def seed_node(db: LegacyDb, now: datetime) -> Seeded:
    """The Node version's data (gramjs sessions, bare group ids, epoch for pending), with its traps."""
    n = naive(now)
    s = {
        "n-1": gramjs_string(4, "149.154.167.91", 80, key(101)),
        "n-2": gramjs_string(2, "149.154.167.51", 443, key(102)),
        "n-2old": gramjs_string(2, "149.154.167.51", 443, key(103)),
        "n-3": gramjs_string(4, "vesta.web.telegram.org", 443, key(104)),
    }
    # 2001: permanent, running, bare supergroup and basic-group ids, an unresolvable one, an inactive one
    _user(db, "2001", n - timedelta(days=90), expires=None, first="Node")
    db.insert("accounts", id="n-1", user_id="2001", session_string=s["n-1"], phone_number="998902000001",
              is_active=True, created_at=n - timedelta(days=80), updated_at=n - timedelta(days=1))
    db.insert("groups", id="3871262979", user_id="2001", title="Bare super", type="supergroup",
              created_at=n - timedelta(days=80))
    db.insert("groups", id="555", user_id="2001", title="Bare basic", type="chat", created_at=n - timedelta(days=80))
    db.insert("groups", id="777", user_id="2001", title="Unknown kind", type="mystery",
              created_at=n - timedelta(days=80))
    db.insert("groups", id="1234567890", user_id="2001", title="Left", type="supergroup", is_active=False,
              created_at=n - timedelta(days=80))
    db.insert("configs", user_id="2001", message="[Shop](https://example.com) ~~old~~ `code`", interval=600,
              is_active=True, last_run_at=n - timedelta(minutes=3), updated_at=n - timedelta(days=1))
    _attempt(db, "2001", "c1", "3871262979", "sent", sent_at=n - timedelta(minutes=3))
    _attempt(db, "2001", "c1", "555", "in-flight", started_at=n - timedelta(minutes=2))
    # 2002 and 2003: one phone twice (unnormalised), the newer row wins
    _user(db, "2002", n - timedelta(days=50), expires=n + timedelta(days=5), first="Old owner")
    db.insert("accounts", id="n-2old", user_id="2002", session_string=s["n-2old"], phone_number="998902000002",
              is_active=True, created_at=n - timedelta(days=50), updated_at=n - timedelta(days=40))
    _user(db, "2003", n - timedelta(days=10), expires=n + timedelta(days=5), first="New owner")
    db.insert("accounts", id="n-2", user_id="2003", session_string=s["n-2"], phone_number="+998902000002",
              is_active=True, created_at=n - timedelta(days=10), updated_at=n - timedelta(days=2))
    # 2004: pending (epoch), a hostname session, a seven-day-plus interval (clamped)
    db.insert("users", id="2004", created_at=n - timedelta(days=2))
    db.insert("access", id="2004", expires_at=datetime(1970, 1, 1), created_at=n - timedelta(days=2))
    db.insert("accounts", id="n-3", user_id="2004", session_string=s["n-3"], phone_number="+998902000004",
              is_active=True, created_at=n - timedelta(days=2), updated_at=n - timedelta(days=2))
    db.insert("configs", user_id="2004", message="weekly", interval=11 * 24 * 3600, is_active=False,
              updated_at=n - timedelta(days=2))
    return Seeded(now, s)


def _user(db: LegacyDb, uid: str, created: datetime, *, expires: datetime | None, first: str) -> None:
    db.insert("users", id=uid, created_at=created)
    db.insert("access", id=uid, username=f"user{uid}", first_name=first, expires_at=expires, created_at=created)


def _attempt(db: LegacyDb, uid: str, campaign: str, target: str, status: str, *, sent_at: datetime | None = None,
             started_at: datetime | None = None, next_attempt_at: datetime | None = None,
             reason: str | None = None) -> None:
    stamp = sent_at or started_at or next_attempt_at
    assert stamp is not None
    values: dict[str, Any] = dict(
        id=uuid.uuid4().hex, user_id=uid, campaign_id=campaign, target_group_id=target, status=status,
        next_attempt_at=next_attempt_at, started_at=started_at, sent_at=sent_at, terminal_reason_code=reason,
        idempotency_key=f"{campaign}:{target}", created_at=stamp - timedelta(seconds=30), updated_at=stamp)
    if db.flavour == "python":
        values.update(sequence=0, retry_count=0, max_retries=3)
    db.insert("attempts", **values)
