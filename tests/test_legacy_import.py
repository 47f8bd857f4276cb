"""`tgcast import-legacy` against both older schemas, built by the tests (tests/legacy_fixtures.py):
what lands in tgcast for every trap, that the source is left byte-identical, that a second run writes
nothing and a later one only what changed, and that the first run from a source is a dry run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from core.crypto import SecretBox
from core.settings import Settings
from legacy.importer import ImportRequest, run_import
from legacy.sessions import parse_session
from legacy.source import SourceError
from legacy.urls import parse_legacy_url
from tests.conftest import _ADMIN_URL
from tests.legacy_fixtures import LegacyDb, key, seed_node, seed_python

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def legacy_dbs() -> Iterator[list[LegacyDb]]:
    made: list[LegacyDb] = []
    yield made
    for db in made:
        db.drop()


def make(legacy_dbs: list[LegacyDb], flavour: str, schema: str = "public") -> LegacyDb:
    db = LegacyDb(_ADMIN_URL, flavour, schema).create()
    legacy_dbs.append(db)
    return db


async def rows(db: psycopg.AsyncConnection, query: str, **params: Any) -> list[dict[str, Any]]:
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute(query, params)
    return await cur.fetchall()


async def one(db: psycopg.AsyncConnection, query: str, **params: Any) -> dict[str, Any]:
    found = await rows(db, query, **params)
    assert len(found) == 1, found
    return found[0]


async def apply(settings: Settings, url: str, **options: Any) -> Any:
    return await run_import(settings, ImportRequest(parse_legacy_url(url), mode="apply", **options), now=NOW)


# ---- the Python rewrite --------------------------------------------------------------------------


async def test_python_schema_lands_with_every_trap_handled(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seeded = seed_python(source, NOW)
    report = await apply(settings, source.url("sqlalchemy"))
    assert report.flavour == "python" and not report.dry_run

    users = {r["user_id"]: r for r in await rows(db, "SELECT * FROM bot_users")}
    assert set(users) == {1001, 1002, 1003, 1004, 1005}  # "@seller" is no Telegram id
    assert (users[1001]["status"], users[1001]["expires_at"]) == ("active", None)
    assert users[1002]["status"] == "active" and users[1002]["expires_at"] > NOW
    assert users[1003]["status"] == "active" and users[1003]["expires_at"] < NOW  # expired, not pending
    assert users[1004]["status"] == "pending"
    assert users[1005]["status"] == "pending"  # no access row: a ban deleted it
    assert users[1001]["username"] == "user1001" and users[1001]["first_name"] == "Ali"

    box = SecretBox(settings.session_keys)
    every = await rows(db, "SELECT * FROM accounts ORDER BY id")
    accounts: dict[int, dict[str, Any]] = {}
    for r in every:
        accounts.setdefault(r["owner_id"], r)  # each user's first account
    assert set(accounts) == {1001, 1002, 1003, 1004, 1005}
    # Every account of a user is brought over, the older bot's current one first.
    assert [(r["tg_user_id"], r["status"]) for r in every if r["owner_id"] == 1003] == [
        (5033, "active"), (5003, "active")]
    # Pyrogram → Telethon, byte for byte; the Pyrogram string carried the user id
    stored = parse_session(box.decrypt(accounts[1001]["session_enc"]))
    assert (stored.format, stored.dc, stored.address, stored.port, stored.auth_key) == (
        "telethon", 2, "149.154.167.51", 443, key(1))
    assert accounts[1001]["tg_user_id"] == 5001 and accounts[1001]["status"] == "active"
    assert accounts[1002]["flood_until"] > NOW + timedelta(minutes=19)  # the flood wait still running
    assert parse_session(box.decrypt(accounts[1002]["session_enc"])).dc == 4  # the older 356-character layout
    assert accounts[1003]["tg_user_id"] == 5033  # the current account: the newest active one
    assert accounts[1004]["status"] == "revoked"  # unreadable: needs log-in, never guessed
    assert box.decrypt(accounts[1005]["session_enc"]) == seeded.sessions["acc-5"]  # a Telethon string as is
    assert accounts[1005]["tg_user_id"] is None  # learnt online (--verify-sessions)

    groups = {(r["owner_id"], r["chat_id"]): r for r in await rows(db, "SELECT * FROM groups")}
    assert set(groups) == {(1001, -1001000000001), (1001, -1001000000002), (1001, -4001), (1002, -1001000000021)}
    assert groups[(1001, -4001)]["kind"] == "group" and groups[(1001, -1001000000001)]["kind"] == "supergroup"
    assert groups[(1001, -1001000000001)]["last_sent_at"] == NOW - timedelta(seconds=10)

    configs = {r["owner_id"]: r for r in await rows(db, "SELECT * FROM configs")}
    assert configs[1001]["active"] and configs[1001]["interval_minutes"] == 5
    assert configs[1001]["next_run_at"] == NOW - timedelta(seconds=10) + timedelta(minutes=5)
    message = await one(db, "SELECT * FROM messages WHERE id = %(id)s", id=configs[1001]["message_id"])
    assert message["text"] == "Sale today, only here"
    assert [(e["type"], e["offset"], e["length"]) for e in message["entities"]] == [("bold", 0, 4), ("italic", 12, 4)]
    # an empty message falls back to the history's last text; a 1-minute interval is clamped to 3
    assert configs[1002]["active"] and configs[1002]["interval_minutes"] == 3
    fallback = await one(db, "SELECT text FROM messages WHERE id = %(id)s", id=configs[1002]["message_id"])
    assert fallback["text"] == "From history"
    assert configs[1002]["next_run_at"] >= NOW + timedelta(minutes=7)  # the retry Telegram asked for
    assert not configs[1003]["active"]  # expired access
    assert not configs[1004]["active"] and configs[1004]["message_id"] is None  # nothing to send

    reasons = report.reasons()
    for reason in ("non_numeric_id", "unreadable_session", "interval_clamped",
                   "message_from_history", "empty_message", "no_access_broadcast", "pending_without_row",
                   "flood_carried"):
        assert reasons[reason] >= 1, reason
    assert report.sessions == {"pyrogram": 4, "telethon": 1, "unreadable": 1}
    # The groups are posted to from each user's first account.
    cur = await db.execute(
        "SELECT DISTINCT g.owner_id, g.account_id = (SELECT min(a.id) FROM accounts a WHERE a.owner_id = g.owner_id)"
        " FROM groups g")
    assert {owner: first for owner, first in await cur.fetchall()} == {1001: True, 1002: True}


@pytest.mark.parametrize("settings_overrides", [{"max_accounts_per_user": 1}])
async def test_accounts_beyond_the_limit_are_reported_not_imported(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seed_python(source, NOW)
    report = await apply(settings, source.url("sqlalchemy"))
    assert report.reasons()["extra_account"] == 1
    found = await rows(db, "SELECT tg_user_id FROM accounts WHERE owner_id = 1003")
    assert found == [{"tg_user_id": 5033}]  # the current one
    assert report.access["pending"] == 1 and report.access["expired"] == 1 and report.access["none"] == 1


# ---- the Node version ------------------------------------------------------------------------------


async def test_node_schema_lands_with_every_trap_handled(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "node", schema="bot")
    seed_node(source, NOW)
    report = await apply(settings, source.url("prisma"))
    assert report.flavour == "node"
    assert report.facts["interval_unit"] == "seconds"

    users = {r["user_id"]: r for r in await rows(db, "SELECT * FROM bot_users")}
    assert users[2004]["status"] == "pending"  # the epoch marks pending in Node
    accounts = {r["owner_id"]: r for r in await rows(db, "SELECT * FROM accounts")}
    # one phone twice ('998…' and '+998…'): the newer row stays connected
    assert accounts[2003]["status"] == "active" and accounts[2002]["status"] == "revoked"
    assert all(a["tg_user_id"] is None for a in accounts.values())  # gramjs strings carry none
    box = SecretBox(settings.session_keys)
    first = parse_session(box.decrypt(accounts[2001]["session_enc"]))
    assert (first.dc, first.address, first.port, first.auth_key) == (4, "149.154.167.91", 80, key(101))
    hostname = parse_session(box.decrypt(accounts[2004]["session_enc"]))
    assert (hostname.dc, hostname.address, hostname.auth_key) == (4, "149.154.167.91", key(104))

    groups = {r["chat_id"]: r for r in await rows(db, "SELECT * FROM groups WHERE owner_id = 2001")}
    assert set(groups) == {-1003871262979, -555, -1001234567890}  # 777 of an unknown kind: reported
    assert groups[-1001234567890]["selected"] is False  # inactive in the older bot
    assert groups[-1003871262979]["last_sent_at"] == NOW - timedelta(minutes=3)
    assert groups[-555]["last_sent_at"] == NOW - timedelta(minutes=2)  # in flight: it may have been sent

    config = await one(db, "SELECT * FROM configs WHERE owner_id = 2001")
    message = await one(db, "SELECT * FROM messages WHERE id = %(id)s", id=config["message_id"])
    assert {e["type"] for e in message["entities"]} >= {"strikethrough", "code"}
    assert config["active"] and config["next_run_at"] == NOW - timedelta(minutes=3) + timedelta(minutes=10)
    weekly = await one(db, "SELECT * FROM configs WHERE owner_id = 2004")
    assert weekly["interval_minutes"] == settings.max_interval_minutes and not weekly["active"]
    reasons = report.reasons()
    for reason in ("phone_owned_twice", "unresolved_group", "interval_clamped"):
        assert reasons[reason] >= 1, reason


# ---- read-only, idempotent, dry first ----------------------------------------------------------------


@pytest.mark.parametrize("flavour", ["python", "node"])
async def test_the_source_is_byte_identical_after_a_dry_run_and_an_import(settings, legacy_dbs, flavour) -> None:
    source = make(legacy_dbs, flavour)
    (seed_python if flavour == "python" else seed_node)(source, NOW)
    before = source.fingerprint()
    await run_import(settings, ImportRequest(parse_legacy_url(source.url()), mode="dry"), now=NOW)
    await apply(settings, source.url())
    assert source.fingerprint() == before


async def tgcast_dump(db: psycopg.AsyncConnection) -> list[Any]:
    dump = []
    for table in ("bot_users", "accounts", "groups", "messages", "configs"):
        dump.append(await rows(db, f"SELECT * FROM {table} ORDER BY 1, 2"))
    return dump


async def test_a_second_run_changes_nothing_and_a_later_one_only_what_changed(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seed_python(source, NOW)
    await apply(settings, source.url())
    first = await tgcast_dump(db)
    again = await apply(settings, source.url())
    assert sum(again.imported.values()) == 0 and sum(again.unchanged.values()) > 0
    assert await tgcast_dump(db) == first

    # the older bot ran on: user 1001 changed the message and added a group
    with source.connect() as conn:
        conn.execute("UPDATE broadcast_configs SET message = 'New **text**', updated_at = now() WHERE user_id = '1001'")
        conn.execute("INSERT INTO user_groups (id, user_id, title, type, is_active, created_at) "
                     "VALUES ('-1001000000003', '1001', 'Market 3', 'supergroup', true, now())")
    later = await apply(settings, source.url())
    assert dict(later.imported) == {"config": 1, "message": 1, "group": 1}
    config = await one(db, "SELECT * FROM configs WHERE owner_id = 1001")
    message = await one(db, "SELECT text, entities FROM messages WHERE id = %(id)s", id=config["message_id"])
    assert message["text"] == "New text" and message["entities"][0]["type"] == "bold"
    assert (await one(db, "SELECT count(*) AS n FROM groups WHERE owner_id = 1001"))["n"] == 4


async def test_the_first_run_from_a_source_is_a_dry_run(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seed_python(source, NOW)
    request = ImportRequest(parse_legacy_url(source.url()))
    first = await run_import(settings, request, now=NOW)
    assert first.dry_run and sum(first.imported.values()) > 0  # it says what it would import
    assert await tgcast_dump(db) == [[], [], [], [], []]
    second = await run_import(settings, request, now=NOW)
    assert not second.dry_run
    assert len(await rows(db, "SELECT * FROM bot_users")) == 5


async def test_a_user_already_using_tgcast_is_left_as_it_is(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seed_python(source, NOW)
    await db.execute("INSERT INTO bot_users (user_id, first_name, status) VALUES (1001, 'Here', 'active')")
    report = await apply(settings, source.url())
    assert report.reasons()["kept_tgcast_user"] == 1
    assert (await one(db, "SELECT first_name FROM bot_users WHERE user_id = 1001"))["first_name"] == "Here"
    assert await rows(db, "SELECT * FROM accounts WHERE owner_id = 1001") == []


# ---- bad input: one line, nothing written on either side ---------------------------------------------


async def test_a_database_of_neither_schema_is_refused(settings, db, legacy_dbs) -> None:
    source = LegacyDb(_ADMIN_URL, "python")
    source.create()
    legacy_dbs.append(source)
    with source.connect() as conn:
        conn.execute("DROP TABLE broadcast_attempts, sent_messages, broadcast_configs, user_groups, "
                     "telegram_accounts, sessions, allowed_users, users")
    with pytest.raises(SourceError, match="neither"):
        await apply(settings, source.url())
    assert await rows(db, "SELECT * FROM legacy_runs") == []


async def test_a_missing_column_is_named(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "node")
    seed_node(source, NOW)
    with source.connect() as conn:
        conn.execute('ALTER TABLE "TelegramAccount" DROP COLUMN "sessionString"')
    before = source.fingerprint()
    with pytest.raises(SourceError, match=r"TelegramAccount\.sessionString"):
        await apply(settings, source.url())
    assert source.fingerprint() == before
    assert await tgcast_dump(db) == [[], [], [], [], []]


async def test_a_url_that_does_not_answer_is_one_line(settings, db) -> None:
    with pytest.raises(SourceError) as caught:
        await apply(settings, "postgresql+asyncpg://postgres:secret-pw@127.0.0.1:9/tgbot")
    assert "secret-pw" not in str(caught.value) and "\n" not in str(caught.value)
    assert await rows(db, "SELECT * FROM legacy_runs") == []


async def test_both_schemas_in_one_database_need_a_choice(settings, db, legacy_dbs) -> None:
    source = make(legacy_dbs, "python")
    seed_python(source, NOW)
    from tests.legacy_fixtures import NODE_DDL

    with source.connect() as conn:
        conn.execute(NODE_DDL.encode())
    with pytest.raises(SourceError, match="--schema"):
        await apply(settings, source.url())
    report = await apply(settings, source.url(), schema_choice="python")
    assert report.flavour == "python"
