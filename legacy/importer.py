"""`tgcast import-legacy`: read the older bot's database, plan, and write the plan into tgcast.

The order makes bad input cost nothing: the source is read completely (and checked) before tgcast is
touched, and tgcast is written in one transaction. A dry run writes only the record of itself, which is
also how "the first run from a source is a dry run" is known.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import psycopg

from core.crypto import SecretBox
from core.settings import Settings
from db import legacy as store
from legacy import source
from legacy.plan import Existing, Options, Plan, build
from legacy.report import Report
from legacy.rules import Flavour, IntervalUnit
from legacy.urls import LegacyUrl

Mode = Literal["auto", "dry", "apply"]
Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class ImportRequest:
    url: LegacyUrl
    mode: Mode = "auto"
    schema_choice: Flavour | None = None
    stopped_at: datetime | None = None
    use_last_run: bool = False
    interval_unit: IntervalUnit | None = None


async def run_import(settings: Settings, request: ImportRequest, *, now: datetime | None = None,
                     progress: Progress = lambda _line: None) -> Report:
    started = datetime.now(UTC)
    now = now or started
    progress(f"reading {request.url.label} …")
    snapshot = await source.read(request.url, choice=request.schema_choice)
    progress(f"read the {snapshot.flavour} schema: {len(snapshot.users)} users, {len(snapshot.accounts)} accounts, "
             f"{len(snapshot.groups)} groups, {len(snapshot.configs)} broadcasts")
    box = SecretBox(settings.session_keys)
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        async with conn.transaction():
            # One import at a time: a second one waits rather than interleaving its writes.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            state = await store.state(conn)
            dry = request.mode == "dry" or (request.mode == "auto" and not await store.has_dry_run(
                conn, request.url.label))
            report = Report(request.url.label, snapshot.flavour, dry)
            options = Options(now=now, min_interval=settings.min_interval_minutes,
                              max_interval=settings.max_interval_minutes, stopped_at=request.stopped_at or now,
                              use_last_run=request.use_last_run, interval_unit=request.interval_unit,
                              admin_ids=frozenset(settings.admin_ids), max_accounts=settings.max_accounts_per_user)
            existing = Existing(state.fingerprints, state.users, state.imported_users, state.active_tg_users)
            plan = build(snapshot, options, existing, report)
            report.facts["stopped_at"] = options.stopped_at.isoformat(timespec="seconds")
            progress(f"planned: {sum(report.imported.values())} rows to write, "
                     f"{sum(report.unchanged.values())} unchanged, {sum(report.skipped.values())} skipped")
            if not dry:
                await _write(conn, plan, state.message_ids, box, progress)
            await store.record_run(conn, source=request.url.label, flavour=snapshot.flavour, dry_run=dry,
                                   report=report.as_dict(), started_at=started)
    progress("done" if not dry else "dry run done: nothing imported")
    return report


_LOCK_ID = 0x7467636C67  # "tgclg": the import's own advisory lock


async def _write(conn: psycopg.AsyncConnection, plan: Plan, message_ids: dict[str, int], box: SecretBox,
                 progress: Progress) -> None:
    progress(f"writing {len(plan.users)} users …")
    await store.upsert_users(conn, [(u.user_id, u.username, u.first_name, u.last_name, u.status, u.expires_at,
                                     u.created_at) for u in plan.users])
    progress(f"writing {len(plan.accounts)} accounts …")
    account_ids = await store.upsert_accounts(conn, [(a.legacy_id, a.owner_id, a.tg_user_id, a.phone,
                                                      box.encrypt(a.session), a.status, a.flood_until)
                                                     for a in plan.accounts])
    progress(f"writing {len(plan.groups)} groups …")
    await store.upsert_groups(conn, [(g.owner_id, g.chat_id, g.title, g.kind, g.selected, g.last_sent_at)
                                     for g in plan.groups])
    # Every group of a user is posted to from their first account (the older bot's current one), unless
    # it has one already; the user may move it to another (docs/bot.md, "Accounts").
    await store.assign_groups(conn, sorted({g.owner_id for g in plan.groups} | {a.owner_id for a in plan.accounts}))
    progress(f"writing {len(plan.messages)} messages …")
    new_ids = await store.insert_messages(conn, [(m.owner_id, m.text, m.entities, m.content_hash, m.created_at)
                                                 for m in plan.messages])
    ids = dict(message_ids)
    ids.update({m.key: i for m, i in zip(plan.messages, new_ids, strict=True)})
    progress(f"writing {len(plan.configs)} broadcasts …")
    await store.upsert_configs(conn, [(c.owner_id, ids.get(c.message_key) if c.message_key else None,
                                       c.interval_minutes, c.active, c.next_run_at) for c in plan.configs])
    targets = {"message": ids, "account": account_ids}
    await store.record_rows(conn, [(m.kind, m.legacy_id, m.owner_id, targets.get(m.kind, {}).get(m.legacy_id),
                                    m.fingerprint) for m in plan.mappings])
