"""psycopg errors translated into tgcast's own at the edge of `db/`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg


class StorageError(Exception):
    """The database could not do what was asked (down, timed out, constraint broken)."""


class StorageUnavailable(StorageError):
    """PostgreSQL cannot be reached; callers answer 503 or retry later."""


class Conflict(StorageError):
    """A uniqueness or foreign-key rule refused the write."""


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation) as exc:
        raise Conflict(exc.diag.constraint_name or "constraint") from exc
    except psycopg.OperationalError as exc:
        raise StorageUnavailable(type(exc).__name__) from exc
