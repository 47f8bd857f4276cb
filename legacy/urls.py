"""The older bot's `DATABASE_URL`, accepted exactly as its operators wrote it.

The Node version handed the URL to Prisma (`postgresql://…?schema=public&connection_limit=5&…`),
the Python version to SQLAlchemy (`postgresql+asyncpg://…`). libpq rejects both the driver suffix and
every Prisma-only query parameter ("invalid URI query parameter"), so they are reduced here to what
libpq understands; Prisma's `schema=` becomes the search path the import reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

_SCHEMES = {"postgres", "postgresql"}
# Parameters of Prisma's own connection handling; they mean nothing to libpq.
_PRISMA_ONLY = {"schema", "connection_limit", "pool_timeout", "pgbouncer", "statement_cache_size",
                "socket_timeout", "sslaccept", "connect_timeout_ms"}
# What a libpq URI may keep: transport security and naming, the settings that matter to a one-off read.
_KEPT = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "host",
         "target_session_attrs"}


class LegacyUrlError(ValueError):
    """A URL the import cannot use; the message never repeats the URL (it may hold a password)."""


@dataclass(frozen=True, slots=True)
class LegacyUrl:
    conninfo: str  # a libpq URI (may hold the password: never print it)
    schema: str  # the schema the older bot's tables live in
    dropped: tuple[str, ...]  # parameters removed, named in the report
    label: str  # host:port/db?schema, safe to print

    def __repr__(self) -> str:
        return f"LegacyUrl({self.label})"


def parse_legacy_url(url: str) -> LegacyUrl:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.split("+", 1)[0].lower()  # postgresql+asyncpg, postgresql+psycopg2, …
    if scheme not in _SCHEMES:
        raise LegacyUrlError("--from must be a postgresql:// URL (the older bot's DATABASE_URL)")
    if not parts.hostname and not parts.path.strip("/"):
        raise LegacyUrlError("--from names no host and no database")
    schema = "public"
    kept: list[tuple[str, str]] = []
    dropped: list[str] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value or "public"
        if key in _KEPT:
            kept.append((key, value))
        else:
            dropped.append(key)
    if not schema.replace("_", "").replace("-", "").isalnum():
        raise LegacyUrlError("the URL's schema= is not a plain schema name")
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(kept, quote_via=quote), ""))
    host = parts.hostname or "localhost"
    try:
        port = parts.port or 5432
    except ValueError:
        raise LegacyUrlError("the URL's port is not a number") from None
    database = unquote(parts.path.lstrip("/")) or "(default)"
    return LegacyUrl(conninfo, schema, tuple(sorted(set(dropped))), f"{host}:{port}/{database}?schema={schema}")
