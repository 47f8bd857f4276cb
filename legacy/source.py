"""The one module that queries the older bot's database: it reads, never writes.

Everything is read in ONE transaction that is READ ONLY and REPEATABLE READ (so every table is seen
at the same instant while the older bot may still be running), on a session whose default is
read-only too, with a short lock timeout so the import never queues behind the older bot's own
schema changes. Nothing is created there, not even a temporary table; aggregation happens in plain
SELECTs.

Which of the two older schemas it is comes from `information_schema.columns`, never from guesses:
the Node version's Prisma tables are quoted CamelCase ("TelegramAccount"."userId"), the Python
rewrite's are snake_case (telegram_accounts.user_id). Columns only inferred for the Node version are
optional: a missing one reads as NULL (or falls back to a near equivalent), while a missing column the
import cannot do without stops it with one line naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from legacy.rules import Flavour
from legacy.urls import LegacyUrl


class SourceError(Exception):
    """The older database cannot be read as one of the two schemas; one line, never the URL."""


# logical table -> (python name, node name, required?)
_TABLES: dict[str, tuple[str, str, bool]] = {
    "users": ("users", "User", True),
    "access": ("allowed_users", "AllowedUser", True),
    "accounts": ("telegram_accounts", "TelegramAccount", True),
    "groups": ("user_groups", "UserGroup", True),
    "configs": ("broadcast_configs", "BroadcastConfig", True),
    "attempts": ("broadcast_attempts", "BroadcastAttempt", True),
    "history": ("sent_messages", "SentMessage", False),
    "sessions": ("sessions", "Session", False),
}

# logical table -> logical column -> (python name, node name, required?)
_COLUMNS: dict[str, dict[str, tuple[str, str, bool]]] = {
    "users": {"id": ("id", "id", True), "created_at": ("created_at", "createdAt", False)},
    "access": {
        "id": ("id", "id", True), "expires_at": ("expires_at", "expiresAt", True),
        "created_at": ("created_at", "createdAt", False), "username": ("username", "username", False),
        "first_name": ("first_name", "firstName", False), "last_name": ("last_name", "lastName", False),
    },
    "accounts": {
        "id": ("id", "id", True), "user_id": ("user_id", "userId", True),
        "session": ("session_string", "sessionString", True), "phone": ("phone_number", "phoneNumber", False),
        "is_active": ("is_active", "isActive", False),
        "flood_until": ("flood_wait_until", "floodWaitUntil", False),
        "created_at": ("created_at", "createdAt", False), "updated_at": ("updated_at", "updatedAt", False),
    },
    "groups": {
        "id": ("id", "id", True), "user_id": ("user_id", "userId", True), "title": ("title", "title", False),
        "type": ("type", "type", False), "is_active": ("is_active", "isActive", False),
        "created_at": ("created_at", "createdAt", False),
    },
    "configs": {
        "id": ("id", "id", True), "user_id": ("user_id", "userId", True), "message": ("message", "message", True),
        "interval": ("interval", "interval", True), "is_active": ("is_active", "isActive", True),
        "last_run_at": ("last_run_at", "lastRunAt", False), "updated_at": ("updated_at", "updatedAt", False),
    },
    "attempts": {
        "user_id": ("user_id", "userId", True), "target": ("target_group_id", "targetGroupId", True),
        "status": ("status", "status", True), "sent_at": ("sent_at", "sentAt", False),
        "started_at": ("started_at", "startedAt", False), "updated_at": ("updated_at", "updatedAt", False),
        "created_at": ("created_at", "createdAt", False),
        "next_attempt_at": ("next_attempt_at", "nextAttemptAt", False),
    },
    "history": {
        "id": ("id", "id", True), "user_id": ("user_id", "userId", True), "text": ("text", "text", True),
        "created_at": ("created_at", "createdAt", False),
    },
    "sessions": {"user_id": ("user_id", "userId", True), "session": ("session_string", "sessionString", True)},
}


# ---- what is read ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccessRow:
    id: str
    expires_at: datetime | None
    created_at: datetime | None
    username: str | None
    first_name: str | None
    last_name: str | None


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: str
    user_id: str
    session: str = field(repr=False)  # a secret: never printed
    phone: str | None
    is_active: bool | None
    flood_until: datetime | None
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: str
    user_id: str
    title: str | None
    type: str | None
    is_active: bool | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ConfigRow:
    id: str
    user_id: str
    message: str | None
    interval: int | None
    is_active: bool
    last_run_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class AttemptSummary:
    """One (user, target group) over every campaign: the older bot's evidence of its last posts."""

    user_id: str
    target: str
    last_sent_at: datetime | None  # latest `sent` row
    last_in_flight_at: datetime | None  # latest `in-flight` row: it may have been sent
    retry_at: datetime | None  # latest retry a pending row still waits for
    last_activity: datetime | None  # any write to the rows: is the older worker still running?


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: str
    user_id: str
    text: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    user_id: str
    session: str = field(repr=False)


@dataclass(slots=True)
class Snapshot:
    flavour: Flavour
    schema: str
    missing_optional: list[str]  # "table.column" read as NULL
    users: list[UserRow]
    access: list[AccessRow]
    accounts: list[AccountRow]
    groups: list[GroupRow]
    configs: list[ConfigRow]
    attempts: list[AttemptSummary]
    history: list[HistoryRow]
    sessions: list[SessionRow]


# ---- reading ------------------------------------------------------------------------------------


async def connect(url: LegacyUrl, *, timeout_s: int = 5) -> AsyncConnection:
    try:
        conn = await psycopg.AsyncConnection.connect(
            url.conninfo, connect_timeout=timeout_s, autocommit=False,
            options="-c default_transaction_read_only=on -c lock_timeout=5000 -c idle_in_transaction_session_timeout=0",
        )
    except psycopg.Error as exc:
        raise SourceError(f"cannot reach the older bot's database at {url.label} ({type(exc).__name__})") from None
    return conn


async def columns_of(conn: AsyncConnection, schema: str) -> dict[str, set[str]]:
    cur = await conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %(s)s",
        {"s": schema},
    )
    found: dict[str, set[str]] = {}
    for table, column in await cur.fetchall():
        found.setdefault(table, set()).add(column)
    return found


def detect(found: dict[str, set[str]], choice: Flavour | None = None) -> Flavour:
    """Which schema the tables are: both marker tables of a flavour must be there."""
    present = [flavour for flavour, index in (("python", 0), ("node", 1))
               if all(names[index] in found for names in (_TABLES["accounts"], _TABLES["configs"]))]
    if not present:
        raise SourceError("neither of the older bot's schemas is there (no telegram_accounts/broadcast_configs, "
                          'no "TelegramAccount"/"BroadcastConfig")')
    if choice is not None:
        if choice not in present:
            raise SourceError(f"--schema {choice} asked, but only the {present[0]} schema is there")
        return choice
    if len(present) == 2:
        raise SourceError("both older schemas are in this database: choose one with --schema node|python")
    return present[0]  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class _Layout:
    """The physical names of one flavour, checked against what the database has."""

    flavour: Flavour
    schema: str
    found: dict[str, set[str]]

    def has_table(self, table: str) -> bool:
        return self.physical_table(table) in self.found

    def physical_table(self, table: str) -> str:
        python, node, _ = _TABLES[table]
        return python if self.flavour == "python" else node

    def table(self, table: str) -> sql.Composable:
        return sql.Identifier(self.schema, self.physical_table(table))

    def column(self, table: str, column: str) -> str | None:
        python, node, _ = _COLUMNS[table][column]
        name = python if self.flavour == "python" else node
        return name if name in self.found.get(self.physical_table(table), set()) else None

    def check(self) -> list[str]:
        """Raise for a missing required table or column; return the optional columns missing."""
        missing: list[str] = []
        for table, (_, _, required) in _TABLES.items():
            if not self.has_table(table):
                if required:
                    raise SourceError(f"the {self.flavour} schema has no table {self.physical_table(table)}")
                continue
            for column, (python, node, needed) in _COLUMNS[table].items():
                if self.column(table, column) is None:
                    name = f"{self.physical_table(table)}.{python if self.flavour == 'python' else node}"
                    if needed:
                        raise SourceError(f"the {self.flavour} schema has no column {name}")
                    missing.append(name)
        return missing

    def select(self, table: str, columns: Iterable[str]) -> sql.Composed:
        """SELECT of the logical columns; a missing optional one reads as NULL under its logical name."""
        parts = []
        for column in columns:
            name = self.column(table, column)
            expr = sql.Identifier(name) if name else sql.SQL("NULL")
            parts.append(sql.SQL("{} AS {}").format(expr, sql.Identifier(column)))
        return sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(parts), self.table(table))

    def text(self, table: str, column: str) -> sql.Composable:
        name = self.column(table, column)
        return sql.SQL("{}::text").format(sql.Identifier(name)) if name else sql.SQL("NULL::text")

    def time(self, table: str, column: str) -> sql.Composable:
        name = self.column(table, column)
        return sql.Identifier(name) if name else sql.SQL("NULL::timestamp")


async def _rows(conn: AsyncConnection, query: sql.Composed) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query)
    return await cur.fetchall()


def _attempts_query(layout: _Layout) -> sql.Composed:
    # Status may be text or an enum: compare its text, hyphen or underscore alike.
    status = sql.SQL("replace(lower({}), '_', '-')").format(layout.text("attempts", "status"))
    updated = layout.time("attempts", "updated_at")
    started = layout.time("attempts", "started_at")
    # Node may lack sentAt: its updatedAt on a `sent` row is the time the row became sent.
    sent = sql.SQL("COALESCE({}, {})").format(layout.time("attempts", "sent_at"), updated)
    return sql.SQL(
        """
        SELECT {user}, {target},
               max({sent}) FILTER (WHERE {status} = 'sent'),
               max(GREATEST({started}, {updated})) FILTER (WHERE {status} = 'in-flight'),
               max({next}) FILTER (WHERE {status} = 'pending'),
               max(GREATEST({updated}, {started}, {sent_raw}, {created}))
        FROM {table} GROUP BY 1, 2
        """
    ).format(
        user=layout.text("attempts", "user_id"), target=layout.text("attempts", "target"), sent=sent,
        status=status, started=started, updated=updated, next=layout.time("attempts", "next_attempt_at"),
        sent_raw=layout.time("attempts", "sent_at"), created=layout.time("attempts", "created_at"),
        table=layout.table("attempts"),
    )


async def read(url: LegacyUrl, *, choice: Flavour | None = None) -> Snapshot:
    """The whole snapshot the import needs, in one read-only repeatable-read transaction."""
    conn = await connect(url)
    try:
        async with conn.transaction():
            # The first statement of the transaction, as PostgreSQL requires: one snapshot, no writes.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            found = await columns_of(conn, url.schema)
            layout = _Layout(detect(found, choice), url.schema, found)
            missing = layout.check()
            snapshot = Snapshot(flavour=layout.flavour, schema=url.schema, missing_optional=missing,
                                **{name: await reader(conn, layout) for name, reader in _READERS.items()})
            # A read-only transaction has nothing to commit: leave it by rolling back.
            raise _Done(snapshot)
    except _Done as done:
        return done.snapshot
    except psycopg.Error as exc:
        raise SourceError(f"reading the older bot's database failed ({type(exc).__name__}: "
                          f"{_first_line(exc)})") from None
    finally:
        await conn.close()


async def _users(conn: AsyncConnection, layout: _Layout) -> list[UserRow]:
    return [UserRow(str(r[0]), r[1]) for r in await _rows(conn, layout.select("users", ["id", "created_at"]))]


async def _access(conn: AsyncConnection, layout: _Layout) -> list[AccessRow]:
    query = layout.select("access", ["id", "expires_at", "created_at", "username", "first_name", "last_name"])
    return [AccessRow(str(r[0]), *r[1:]) for r in await _rows(conn, query)]


async def _accounts(conn: AsyncConnection, layout: _Layout) -> list[AccountRow]:
    query = layout.select("accounts", ["id", "user_id", "session", "phone", "is_active", "flood_until",
                                       "created_at", "updated_at"])
    return [AccountRow(str(r[0]), str(r[1]), r[2] or "", *r[3:]) for r in await _rows(conn, query)]


async def _groups(conn: AsyncConnection, layout: _Layout) -> list[GroupRow]:
    query = layout.select("groups", ["id", "user_id", "title", "type", "is_active", "created_at"])
    return [GroupRow(str(r[0]), str(r[1]), *r[2:]) for r in await _rows(conn, query)]


async def _configs(conn: AsyncConnection, layout: _Layout) -> list[ConfigRow]:
    query = layout.select("configs", ["id", "user_id", "message", "interval", "is_active", "last_run_at",
                                      "updated_at"])
    return [ConfigRow(str(r[0]), str(r[1]), r[2], _int(r[3]), bool(r[4]), r[5], r[6])
            for r in await _rows(conn, query)]


async def _attempts(conn: AsyncConnection, layout: _Layout) -> list[AttemptSummary]:
    return [AttemptSummary(*r) for r in await _rows(conn, _attempts_query(layout))]


async def _history(conn: AsyncConnection, layout: _Layout) -> list[HistoryRow]:
    if not layout.has_table("history"):
        return []
    query = layout.select("history", ["id", "user_id", "text", "created_at"])
    return [HistoryRow(str(r[0]), str(r[1]), r[2] or "", r[3]) for r in await _rows(conn, query)]


async def _sessions(conn: AsyncConnection, layout: _Layout) -> list[SessionRow]:
    if not layout.has_table("sessions"):
        return []
    query = layout.select("sessions", ["user_id", "session"])
    return [SessionRow(str(r[0]), r[1] or "") for r in await _rows(conn, query)]


_READERS: dict[str, Callable[[AsyncConnection, _Layout], Awaitable[list[Any]]]] = {
    "users": _users, "access": _access, "accounts": _accounts, "groups": _groups, "configs": _configs,
    "attempts": _attempts, "history": _history, "sessions": _sessions,
}


async def last_activity(url: LegacyUrl, *, choice: Flavour | None = None) -> datetime | None:
    """The latest write the older worker made (attempt rows, a config's last run): a sign of life."""
    snapshot = await read(url, choice=choice)
    times = [a.last_activity for a in snapshot.attempts if a.last_activity is not None]
    times += [c.last_run_at for c in snapshot.configs if c.last_run_at is not None]
    return max(times) if times else None


class _Done(Exception):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot


def _int(value: object) -> int | None:
    if value is None:
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:200]
