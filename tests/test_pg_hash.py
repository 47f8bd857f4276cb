"""The idempotency key's formula in Python (core/pg_hash.py, core.schedule.random_id) is the one the tick
runs in SQL (db/tick.py RANDOM_ID_SQL), held equal against the server for boundary values and a sweep."""

from __future__ import annotations

import psycopg

from core.pg_hash import hashint8extended
from core.schedule import random_id
from db.tick import RANDOM_ID_SQL

_EDGES = [0, 1, -1, 2, (1 << 31) - 1, 1 << 31, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 62), (1 << 63) - 1,
          -(1 << 63), -(1 << 32), 123_456_789_012]
# Boundary pairs written in, then a fixed sweep of the ranges ids live in (no random seed: the same every run).
_PAIRS = [(v, s) for v in _EDGES for s in _EDGES] + [(d, c) for d in range(1, 4000, 37) for c in range(1, 600, 53)]


async def test_hashint8extended_is_postgresqls_bit_for_bit(db: psycopg.AsyncConnection) -> None:
    cur = await db.execute(
        "SELECT hashint8extended(v, s) FROM unnest(%(v)s::bigint[], %(s)s::bigint[]) WITH ORDINALITY AS u(v, s, n) "
        "ORDER BY n", {"v": [v for v, _ in _PAIRS], "s": [s for _, s in _PAIRS]})
    assert [r[0] for r in await cur.fetchall()] == [hashint8extended(v, s) for v, s in _PAIRS]


async def test_the_ticks_random_id_sql_is_core_schedules_formula(db: psycopg.AsyncConnection) -> None:
    positive = [(d, c) for d, c in _PAIRS if d > 0 and c > 0]
    expression = RANDOM_ID_SQL.format(delivery="d", cycle="c")
    cur = await db.execute(
        f"SELECT {expression} FROM unnest(%(d)s::bigint[], %(c)s::bigint[]) WITH ORDINALITY AS u(d, c, n) ORDER BY n",
        {"d": [d for d, _ in positive], "c": [c for _, c in positive]})
    assert [r[0] for r in await cur.fetchall()] == [random_id(d, c) for d, c in positive]

