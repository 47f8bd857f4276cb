"""Bulk fixture data for benchmarks and the soak harness: broadcasters with accounts, groups and a
message, and the matching emulated Telegram network in Redis.

Benchmark-only: COPY is used directly here (product code keeps its SQL in `db/`) because building
100,000 configs row by row would take longer than the benchmark itself.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import psycopg
from redis import Redis

from core.crypto import SecretBox

USER_BASE = 10_000_000
TG_BASE = 20_000_000
CHAT_BASE = -1_002_000_000_000


def chat_id(group: int) -> int:
    return CHAT_BASE - group


def seed(
    database_url: str,
    redis_url: str,
    *,
    users: int,
    groups_per_user: int,
    interval_minutes: int,
    box: SecretBox,
    redis_prefix: str = "tgcast:",
    spread_s: float = 60.0,
    first_user: int = 0,
    shared_groups: int = 2000,
    with_accounts: bool = True,
    with_network: bool = True,
    start_at: datetime | None = None,
) -> None:
    """Users `first_user .. first_user+users-1`, each active with `groups_per_user` selected groups
    (drawn from `shared_groups` groups), due spread evenly over `spread_s` from `start_at`."""
    now = start_at or datetime.now(UTC)
    ids = range(first_user, first_user + users)
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY bot_users (user_id, first_name, status, expires_at) FROM STDIN") as copy:
            for i in ids:
                copy.write_row((USER_BASE + i, f"bench{i}", "active", None))
        if with_accounts:
            shared = box.encrypt("fake-bench-shared")
            with cur.copy("COPY accounts (owner_id, tg_user_id, phone, session_enc) FROM STDIN") as copy:
                for i in ids:
                    enc = box.encrypt(f"fake-bench-{i}") if with_network else shared
                    copy.write_row((USER_BASE + i, TG_BASE + i, f"+99890{i:07d}", enc))
        with cur.copy("COPY groups (owner_id, chat_id, title, kind, access_hash, selected) FROM STDIN") as copy:
            for i in ids:
                for g in _groups_of(i, groups_per_user, shared_groups):
                    copy.write_row((USER_BASE + i, chat_id(g), f"Group {g}", "supergroup", 1000 + g, True))
        if with_accounts:
            # Each group is posted from its account (one per broadcaster here), as a login assigns them.
            cur.execute(
                "UPDATE groups g SET account_id = a.id FROM accounts a"
                " WHERE a.owner_id = g.owner_id AND g.account_id IS NULL AND g.owner_id BETWEEN %s AND %s",
                (USER_BASE + ids.start, USER_BASE + ids.stop - 1))
        with cur.copy("COPY messages (id, owner_id, kind, text, entities, content_hash) FROM STDIN") as copy:
            for i in ids:
                text = f"Benchmark message {i}"
                copy.write_row((i + 1, USER_BASE + i, "text", text, "[]", hashlib.sha256(text.encode()).hexdigest()))
        # Session encryption dominates seeding 100,000 users; one ciphertext serves those the worker
        # never opens (tick benchmarks), each user gets its own when the network is seeded too.
        with cur.copy(
            "COPY configs (owner_id, message_id, interval_minutes, active, next_run_at) FROM STDIN"
        ) as copy:
            for n, i in enumerate(ids):
                due = now + timedelta(seconds=spread_s * n / max(1, users))
                copy.write_row((USER_BASE + i, i + 1, interval_minutes, True, due))
        cur.execute("SELECT setval('messages_id_seq', (SELECT max(id) FROM messages))")
        conn.commit()
        cur.execute("ANALYZE")
    if with_accounts and with_network:
        _seed_network(redis_url, ids, groups_per_user, shared_groups, redis_prefix)


def _groups_of(i: int, per_user: int, shared: int) -> list[int]:
    return [(i * 7 + k) % shared for k in range(per_user)]


def _seed_network(redis_url: str, ids: range, per_user: int, shared: int, prefix: str) -> None:
    p = f"{prefix}fake:"
    with Redis.from_url(redis_url) as r:
        pipe = r.pipeline(transaction=False)
        for g in range(shared):
            group = {"chat_id": chat_id(g), "title": f"Group {g}", "kind": "supergroup", "slowmode_s": 0,
                     "access_hash": 1000 + g}
            pipe.set(f"{p}group:{chat_id(g)}", json.dumps(group))
        for i in ids:
            pipe.set(f"{p}session:fake-bench-{i}", TG_BASE + i)
            pipe.sadd(f"{p}member:{TG_BASE + i}", *[chat_id(g) for g in _groups_of(i, per_user, shared)])
            if len(pipe) > 5000:
                pipe.execute()
        pipe.execute()
