"""The import of the older bot's data at production size: 10,000 users, each with a logged-in account
(a Pyrogram session string to convert and encrypt), 20 groups (200,000), a Markdown message to render, a
running broadcast, 20 attempt rows (200,000) to find each group's last post in, and a history entry.

Both databases are the machine's PostgreSQL on loopback (the older one read in its read-only snapshot,
tgcast written in one transaction). Measured: the first import into an empty tgcast, and a second run
over the same data (every row unchanged, nothing written), each from a fresh tgcast database.
The goal is under 60 s for the first import."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import SESSION_KEY, TICK_TOKEN, Spread, fresh_database, services
from core.settings import Settings
from legacy.importer import ImportRequest, run_import
from legacy.urls import parse_legacy_url
from tests.legacy_fixtures import LegacyDb, key, naive
from tests.legacy_session_strings import pyrogram_string

USERS = 10_000
GROUPS_PER_USER = 20
REPETITIONS = 1
GOAL_S = 60.0


def _fill(db: LegacyDb, now: datetime) -> None:
    n = naive(now)
    with db.connect() as conn:
        conn.execute("INSERT INTO users (id, created_at) SELECT (100000 + g)::text, %s FROM generate_series(1, %s) g",
                     (n - timedelta(days=30), USERS))
        conn.execute(
            "INSERT INTO allowed_users (id, username, first_name, expires_at, created_at) "
            "SELECT (100000 + g)::text, 'seller' || g, 'Seller', %s, %s FROM generate_series(1, %s) g",
            (n + timedelta(days=30), n - timedelta(days=30), USERS))
        with conn.cursor().copy("COPY telegram_accounts (id, user_id, session_string, phone_number, is_active, "
                                "is_flood_wait, created_at, updated_at) FROM STDIN") as copy:
            for g in range(1, USERS + 1):
                copy.write_row((str(uuid.UUID(int=g)), str(100000 + g), pyrogram_string(2, key(g), 500000 + g),
                                f"+99890{g:07d}", True, False, n - timedelta(days=20), n - timedelta(days=1)))
        conn.execute(
            "INSERT INTO user_groups (id, user_id, title, type, is_active, created_at) "
            "SELECT (-1001000000000 - u * 100 - k)::text, (100000 + u)::text, 'Group ' || k, 'supergroup', true, %s "
            "FROM generate_series(1, %s) u, generate_series(1, %s) k",
            (n - timedelta(days=20), USERS, GROUPS_PER_USER))
        conn.execute(
            "INSERT INTO broadcast_configs (user_id, message, interval, is_active, last_run_at, updated_at) "
            "SELECT (100000 + g)::text, '**Sale** ' || g || ' __today__ [here](https://example.com/' || g || ')', "
            "600, true, %s, %s FROM generate_series(1, %s) g",
            (n - timedelta(minutes=4), n - timedelta(days=2), USERS))
        conn.execute(
            "INSERT INTO broadcast_attempts (id, user_id, campaign_id, target_group_id, sequence, status, "
            "retry_count, max_retries, started_at, sent_at, idempotency_key, created_at, updated_at) "
            "SELECT u || ':' || k, (100000 + u)::text, u::text, (-1001000000000 - u * 100 - k)::text, k, 'sent', "
            "0, 3, %(at)s, %(at)s, u || ':' || k, %(at)s, %(at)s "
            "FROM generate_series(1, %(users)s) u, generate_series(1, %(groups)s) k",
            {"at": n - timedelta(minutes=3), "users": USERS, "groups": GROUPS_PER_USER})
        conn.execute("INSERT INTO sent_messages (user_id, text, created_at) "
                     "SELECT (100000 + g)::text, 'old **text**', %s FROM generate_series(1, %s) g",
                     (n - timedelta(days=3), USERS))


def _settings(database_url: str) -> Settings:
    values: dict[str, object] = {"database_url": database_url, "redis_url": services()["redis"],
                                 "session_keys": SESSION_KEY, "tick_token": TICK_TOKEN, "gateway": "fake",
                                 "_env_file": None}
    return Settings(**values)  # type: ignore[arg-type]


async def _measure(source: LegacyDb, now: datetime) -> tuple[float, float, dict[str, float], int]:
    settings = _settings(fresh_database("tgcast_bench_legacy"))
    request = ImportRequest(parse_legacy_url(source.url()), mode="apply")
    marks: list[tuple[str, float]] = []
    started = time.perf_counter()
    report = await run_import(settings, request, now=now,
                              progress=lambda line: marks.append((line.split(" ")[0], time.perf_counter())))
    first = time.perf_counter() - started
    phases: dict[str, float] = {}
    previous = started
    for label, at in marks:
        phases[label] = phases.get(label, 0.0) + at - previous
        previous = at
    started = time.perf_counter()
    again = await run_import(settings, request, now=now)
    second = time.perf_counter() - started
    assert sum(again.imported.values()) == 0, "the second run wrote rows"
    return first, second, phases, sum(report.imported.values())


def run(out_dir: Path) -> str:
    now = datetime.now(UTC)
    source = LegacyDb(services()["server"], "python").create()
    try:
        _fill(source, now)
        firsts, seconds, phase_runs, written = [], [], [], 0
        for _ in range(REPETITIONS):
            first, second, phases, written = asyncio.run(_measure(source, now))
            firsts.append(first)
            seconds.append(second)
            phase_runs.append(phases)
    finally:
        source.drop()
    first_s, second_s = Spread.of(firsts), Spread.of(seconds)
    # Each phase's share, from the progress lines' times: read → planned → each kind written → done.
    names = {"reading": "connect", "read": "read the source", "planned:": "plan", "writing": "write",
             "done": "commit"}
    mean = {name: sum(p.get(name, 0.0) for p in phase_runs) / len(phase_runs) for name in phase_runs[0]}
    phase_text = ", ".join(f"{names.get(name, name)} {value:.1f} s" for name, value in mean.items())
    verdict = "met" if max(firsts) < GOAL_S else "MISSED"
    return (
        "## Import of the older bot's data\n\n"
        f"`python -m bench legacy-import`: {USERS:,} users, {USERS:,} accounts (Pyrogram strings converted and "
        f"encrypted), {USERS * GROUPS_PER_USER:,} groups, {USERS * GROUPS_PER_USER:,} attempt rows, {USERS:,} "
        f"running broadcasts with Markdown messages, {USERS:,} history entries; "
        f"{REPETITIONS} run{'s' if REPETITIONS > 1 else ''}, each into a fresh tgcast database on the same "
        "PostgreSQL (loopback).\n\n"
        "| measurement | value: median (min–max) | notes |\n|---|---|---|\n"
        f"| first import | {first_s.fmt(1)} s | goal < {GOAL_S:.0f} s: {verdict}; {written:,} rows written |\n"
        f"| second run, nothing changed | {second_s.fmt(1)} s | reads and fingerprints everything, writes none |\n"
        f"| first import by phase (mean) | {phase_text} | plan: sessions, Markdown, fingerprints (pure Python) |\n"
    )
