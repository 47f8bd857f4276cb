"""The cut-over from the older bot, end to end: an import followed by the real tick and worker
posts nothing before each group's interval has passed since the older bot's last post there, then
posts from the right account with the formatting intact; `--verify-sessions` learns what only Telegram
knows, marks dead sessions as needing log-in (the user reads it on their next message), and refuses to
run while the older worker is alive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.crypto import SecretBox
from jobs.send_batch import run_batch
from jobs.tick import tick
from legacy.importer import ImportRequest, run_import
from legacy.sessions import parse_session
from legacy.urls import parse_legacy_url
from legacy.verify import CLAIM_TTL_S, OlderBotAlive, verify_sessions
from tests.conftest import _ADMIN_URL
from tests.harness import TgUser
from tests.legacy_fixtures import LegacyDb, naive, seed_node, seed_python
from tests.runtime_helpers import TimeTravel
from userbot.claims import ConnectionClaims
from userbot.fake import FakeGateway, FakeGroup

INTERVAL_S = 300  # user 1001's interval in the fixture


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"claim_ahead_ms": 0}  # deliveries not yet due stay unclaimed (the test travels in time)


@pytest.fixture
def source() -> Iterator[LegacyDb]:
    db = LegacyDb(_ADMIN_URL, "python").create()
    yield db
    db.drop()


async def import_all(settings, url: str, now: datetime) -> None:
    await run_import(settings, ImportRequest(parse_legacy_url(url), mode="apply"), now=now)


async def test_nothing_is_posted_for_one_interval_after_the_older_bots_last_post(
        settings, db, net, pool, ctx, source) -> None:
    now = datetime.now(UTC)
    seeded = seed_python(source, now)  # user 1001's three groups were posted to 10 s ago
    await import_all(settings, source.url(), now)
    chats = [-1001000000001, -1001000000002, -4001]
    await net.add_session(parse_session(seeded.sessions["acc-1"]).to_telethon(), 5001)
    for chat in chats:
        await net.add_group(FakeGroup(chat, f"G{chat}", kind="group" if chat == -4001 else "supergroup"),
                            members=[5001])

    clock = TimeTravel(db, 1001)
    for step in range(4):  # four ticks over the first 4.5 minutes: nothing is due
        await tick(pool, settings)
        cur = await db.execute("SELECT count(*) FROM cycles WHERE owner_id = 1001")
        assert (await cur.fetchone())[0] == 0, f"a cycle after {clock.offset} s"
        await clock.advance(60 if step < 3 else 30)
    for chat in chats:
        assert await net.posted(chat) == []

    await clock.advance(INTERVAL_S - clock.offset - 10 + 1)  # just past one interval since the last post
    await tick(pool, settings)
    cur = await db.execute("SELECT id FROM cycles WHERE owner_id = 1001")
    [(cycle_id,)] = await cur.fetchall()
    await run_batch(ctx, cycle_id)
    last_old_post = (now - timedelta(seconds=10)).timestamp()
    for chat in chats:
        [post] = await net.posted(chat)
        assert post.from_tg_user_id == 5001
        assert post.text == "Sale today, only here"
        assert [(e["type"], e["offset"], e["length"]) for e in post.entities] == [("bold", 0, 4), ("italic", 12, 4)]
        assert post.at + clock.offset - last_old_post >= INTERVAL_S  # on the test's timeline


def claims(redis, settings) -> ConnectionClaims:
    return ConnectionClaims(redis, settings.redis_prefix, "import-legacy:test", ttl_s=CLAIM_TTL_S)


async def test_verify_sessions_learns_ids_and_hashes_and_marks_dead_sessions(settings, db, net, tg, redis,
                                                                             legacy_dbs_node) -> None:
    now = datetime.now(UTC)
    node = legacy_dbs_node
    seeded = seed_node(node, now)
    await import_all(settings, node.url(), now)
    # 2001's session is alive at "Telegram" (as user 9001, in two of its groups); 2004's was ended there
    await net.add_session(parse_session(seeded.sessions["n-1"]).to_telethon(), 9001)
    await net.add_session(parse_session(seeded.sessions["n-2"]).to_telethon(), 9003)
    await net.add_group(FakeGroup(-1003871262979, "Bare super", access_hash=4242), members=[9001])
    await net.add_group(FakeGroup(-555, "Bare basic", kind="group"), members=[9001])
    await db.execute("UPDATE configs SET active = true, next_run_at = now() + interval '1 hour' "
                     "WHERE owner_id = 2004")

    report = await verify_sessions(settings, FakeGateway(net), parse_legacy_url(node.url()), claims(redis, settings),
                                   parallel=2)

    assert dict(report.outcomes) == {"ok": 2, "needs_login": 1}
    cur = await db.execute("SELECT owner_id, tg_user_id, status FROM accounts ORDER BY owner_id")
    assert await cur.fetchall() == [(2001, 9001, "active"), (2002, None, "revoked"), (2003, 9003, "active"),
                                    (2004, None, "revoked")]
    cur = await db.execute("SELECT chat_id, access_hash, selected FROM groups WHERE owner_id = 2001 ORDER BY chat_id")
    assert await cur.fetchall() == [(-1003871262979, 4242, True), (-1001234567890, None, False), (-555, None, True)]
    cur = await db.execute("SELECT active FROM configs WHERE owner_id = 2004")
    assert (await cur.fetchone())[0] is False  # a dead session's broadcast stops
    # the user learns it on their next message
    await db.execute("UPDATE bot_users SET status = 'active', expires_at = NULL WHERE user_id = 2004")
    user = TgUser(2004, first_name="Pending")
    await tg.send(user, "/start")
    assert tg.screen(user).has("menu.session_ended")
    # a second run checks only what was not checked
    again = await verify_sessions(settings, FakeGateway(net), parse_legacy_url(node.url()), claims(redis, settings))
    assert sum(again.outcomes.values()) == 0


@pytest.fixture
def legacy_dbs_node() -> Iterator[LegacyDb]:
    db = LegacyDb(_ADMIN_URL, "node").create()
    yield db
    db.drop()


async def test_verify_sessions_refuses_while_the_older_worker_is_alive(settings, db, net, redis, source) -> None:
    now = datetime.now(UTC)
    seed_python(source, now)
    await import_all(settings, source.url(), now)
    with source.connect() as conn:
        conn.execute("UPDATE broadcast_attempts SET updated_at = %s", (naive(now - timedelta(seconds=5)),))
    before = await (await db.execute("SELECT owner_id, status, tg_user_id FROM accounts ORDER BY 1")).fetchall()
    with pytest.raises(OlderBotAlive):
        await verify_sessions(settings, FakeGateway(net), parse_legacy_url(source.url()), claims(redis, settings),
                              now=now)
    after = await (await db.execute("SELECT owner_id, status, tg_user_id FROM accounts ORDER BY 1")).fetchall()
    assert after == before
    assert await net.connect_total() == 0


async def test_no_session_string_reaches_the_report_or_the_log(settings, db, source, caplog) -> None:
    now = datetime.now(UTC)
    seeded = seed_python(source, now)
    caplog.set_level("DEBUG")
    report = await run_import(settings, ImportRequest(parse_legacy_url(source.url()), mode="apply"), now=now)
    printed = report.as_text() + report.as_json() + caplog.text
    box = SecretBox(settings.session_keys)
    cur = await db.execute("SELECT session_enc FROM accounts")
    stored = [box.decrypt(enc) for (enc,) in await cur.fetchall()]
    for secret in [*seeded.sessions.values(), *stored]:
        if len(secret) > 40:
            assert secret[5:40] not in printed


async def test_verify_sessions_never_opens_an_account_a_tgcast_worker_holds(settings, db, net, redis,
                                                                            legacy_dbs_node) -> None:
    now = datetime.now(UTC)
    seeded = seed_node(legacy_dbs_node, now)
    await import_all(settings, legacy_dbs_node.url(), now)
    await net.add_session(parse_session(seeded.sessions["n-1"]).to_telethon(), 9001)
    worker = ConnectionClaims(redis, settings.redis_prefix, "worker-a", ttl_s=30)
    cur = await db.execute("SELECT id FROM accounts WHERE owner_id = 2001")
    name = str((await cur.fetchone())[0])  # the name a worker's connection cache claims it by
    assert await worker.hold(name)  # a running worker has 2001's connection open
    report = await verify_sessions(settings, FakeGateway(net), parse_legacy_url(legacy_dbs_node.url()),
                                   claims(redis, settings))
    assert report.outcomes["in_use"] == 1
    assert await net.peak_connections(9001) == 0  # never opened: one session, one place
    assert await worker.hold(name)  # still the worker's


async def test_a_flood_wait_leaves_the_session_for_a_later_check(settings, db, net, redis, legacy_dbs_node) -> None:
    now = datetime.now(UTC)
    seeded = seed_node(legacy_dbs_node, now)
    await import_all(settings, legacy_dbs_node.url(), now)
    await net.add_session(parse_session(seeded.sessions["n-1"]).to_telethon(), 9001)
    await net.fail_next(9001, "FLOOD_WAIT_30")  # the dialog listing meets a flood wait
    url = parse_legacy_url(legacy_dbs_node.url())
    report = await verify_sessions(settings, FakeGateway(net), url, claims(redis, settings))
    assert report.outcomes["retry_later"] == 1
    cur = await db.execute("SELECT status, tg_user_id FROM accounts WHERE owner_id = 2001")
    assert await cur.fetchone() == ("active", None)  # untouched, and checked again next time
    later = await verify_sessions(settings, FakeGateway(net), url, claims(redis, settings))
    assert later.outcomes["ok"] == 1 and await net.peak_connections(9001) == 1
