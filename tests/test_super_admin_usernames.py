"""One rule for super admins (services.access.is_super_admin): an admin listed by username in
ADMIN_USERNAMES is resolved to their id when they first write to the bot (recorded in PostgreSQL),
and from then on is a super admin everywhere — handlers, /tick, the send batch, the ban guard —
exactly like an admin listed by id."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from db import users
from jobs.send_batch import run_batch
from jobs.tick import tick
from services import access
from tests.conftest import ADMIN_ID, TICK_TOKEN, make_settings
from tests.harness import Telegram, TgUser
from tests.runtime_helpers import config_row, make_broadcaster

CHIEF = TgUser(900_000_050, first_name="Chief", username="Chief")  # listed as "chief" below
IMPOSTOR_ID = 700_000_077


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"admin_usernames": "@chief,deputy"}


@pytest.fixture(autouse=True)
def clean_resolutions(database_url: str) -> Iterator[None]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE admin_usernames")
    yield


async def resolutions(db) -> dict[str, int]:
    cur = await db.execute("SELECT username, user_id FROM admin_usernames")
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


async def expire(db, user_id: int) -> None:
    await db.execute("UPDATE bot_users SET status = 'active', expires_at = now() - interval '1 day' "
                     "WHERE user_id = %(u)s", {"u": user_id})


async def post_tick(client) -> dict[str, Any]:
    response = await client.post("/tick", headers={"Authorization": f"Bearer {TICK_TOKEN}"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def running_cycle(db, owner_id: int) -> int:
    cur = await db.execute("SELECT id FROM cycles WHERE owner_id = %(o)s AND status = 'running'", {"o": owner_id})
    [(cycle_id,)] = await cur.fetchall()
    return int(cycle_id)


# ---- the rule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_id", "resolved", "expected"),
    [
        (ADMIN_ID, (), True),  # listed by id: no resolution needed
        (ADMIN_ID, ("nobody",), True),
        (5, ("chief",), True),  # resolved under a listed username
        (5, ("old", "deputy"), True),
        (5, (), False),  # never resolved: a username alone decides nothing
        (5, ("boss",), False),  # resolved once under a username that is no longer listed
    ],
)
def test_is_super_admin(user_id: int, resolved: tuple[str, ...], expected: bool) -> None:
    settings = make_settings("postgresql://unused", "redis://unused", "http://unused",
                             admin_usernames="Chief,@deputy")
    assert access.is_super_admin(settings, user_id, resolved) is expected


def test_without_usernames_only_ids_count() -> None:
    settings = make_settings("postgresql://unused", "redis://unused", "http://unused")
    assert access.is_super_admin(settings, ADMIN_ID) is True
    assert access.is_super_admin(settings, 5, ("chief",)) is False


async def test_first_seen_wins(db) -> None:
    first = await users.admin_usernames(db, 11, seen_as="chief")
    assert (first.usernames, first.resolved_now) == (["chief"], "chief")
    again = await users.admin_usernames(db, 11, seen_as="chief")
    assert (again.usernames, again.resolved_now) == (["chief"], None)
    other = await users.admin_usernames(db, 12, seen_as="chief")  # the username changed hands
    assert (other.usernames, other.resolved_now) == ([], None)
    assert await users.admin_usernames(db, 11) == users.AdminUsernames(["chief"], None)
    assert await users.resolved_admin_ids(db, {"chief", "deputy"}) == [11]


# ---- resolution through the webhook --------------------------------------------------------------


async def test_first_message_resolves_the_username_and_the_id_stays_admin(
    tg: Telegram, db, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.access"):
        await tg.send(CHIEF, "/info")
    assert tg.screen(CHIEF).has("admin.info")
    assert await resolutions(db) == {"chief": CHIEF.id}
    assert any("resolved to id" in r.getMessage() for r in caplog.records)
    assert await users.get(db, CHIEF.id) is None  # a super admin needs no access row

    # The username changes hands: its new holder is an ordinary unknown user...
    impostor = TgUser(IMPOSTOR_ID, first_name="Imp", username="chief")
    await tg.send(impostor, "/info")
    assert tg.screen(impostor).has("access.welcome")
    row = await users.get(db, IMPOSTOR_ID)
    assert row is not None and row.status == "pending"
    assert await resolutions(db) == {"chief": CHIEF.id}
    # ...and the resolved id stays a super admin under its new username.
    await tg.send(TgUser(CHIEF.id, first_name="Chief", username="renamed"), "/info")
    assert tg.screen(CHIEF).has("admin.info")


async def test_resolved_admin_is_told_of_new_requests(tg: Telegram) -> None:
    await tg.send(CHIEF, "/start")
    await tg.send(TgUser(IMPOSTOR_ID, first_name="New"), "hello")
    assert "access.new_request" in tg.all_keys(CHIEF)
    assert "access.new_request" in tg.all_keys(ADMIN_ID)


# ---- the tick and the send batch -----------------------------------------------------------------


async def test_expired_username_admin_keeps_broadcasting_through_tick_and_send_batch(
    tg: Telegram, client, db, net, settings, ctx
) -> None:
    await tg.send(CHIEF, "/start")
    b = await make_broadcaster(db, net, settings, CHIEF.id, groups=2)
    await expire(db, CHIEF.id)
    summary = await post_tick(client)
    assert (summary["enqueued"], summary["skipped"]) == (1, {})
    result = await run_batch(ctx, await running_cycle(db, CHIEF.id))
    assert (result.outcome, result.sent) == ("finished", 2)
    assert [len(await net.posted(c)) for c in b.chat_ids] == [1, 1]
    assert (await config_row(db, CHIEF.id))["active"] is True


async def test_send_batch_keeps_going_when_the_row_expires_after_the_tick(
    tg: Telegram, client, db, net, settings, ctx
) -> None:
    await tg.send(CHIEF, "/start")
    b = await make_broadcaster(db, net, settings, CHIEF.id, groups=1)
    assert (await post_tick(client))["enqueued"] == 1
    await db.execute("UPDATE bot_users SET status = 'banned' WHERE user_id = %(u)s", {"u": CHIEF.id})
    assert (await run_batch(ctx, await running_cycle(db, CHIEF.id))).outcome == "finished"
    assert len(await net.posted(b.chat_ids[0])) == 1


async def test_unresolved_or_unlisted_username_is_not_allowed(tg: Telegram, client, db, net, settings, pool) -> None:
    # Listed but never seen: the tick cannot know the id, so the expired row decides.
    await make_broadcaster(db, net, settings, CHIEF.id, groups=1)
    await expire(db, CHIEF.id)
    assert (await post_tick(client))["skipped"] == {"not_allowed": 1}
    assert (await config_row(db, CHIEF.id))["active"] is False
    # Resolved, then taken out of ADMIN_USERNAMES: the resolution grants nothing any more.
    await tg.send(CHIEF, "/start")
    await db.execute("UPDATE configs SET active = true, next_run_at = now() WHERE owner_id = %(u)s", {"u": CHIEF.id})
    unlisted = make_settings(settings.database_url, settings.redis_url, settings.bot_api_base or "")
    summary = await tick(pool, unlisted)
    assert (summary.enqueued, summary.skipped) == (0, {"not_allowed": 1})


async def test_id_listed_admin_unchanged(tg: Telegram, client, db, net, settings, ctx) -> None:
    b = await make_broadcaster(db, net, settings, ADMIN_ID, groups=1)
    await expire(db, ADMIN_ID)
    assert (await post_tick(client))["enqueued"] == 1
    assert (await run_batch(ctx, await running_cycle(db, ADMIN_ID))).outcome == "finished"
    assert len(await net.posted(b.chat_ids[0])) == 1
    assert await resolutions(db) == {}
    assert await access.super_admin(db, settings, ADMIN_ID) is True


# ---- the ban guard -------------------------------------------------------------------------------


async def test_username_admin_cannot_be_banned_by_command_or_button(
    tg: Telegram, db, net, settings, admin: TgUser
) -> None:
    await tg.send(CHIEF, "/start")
    await make_broadcaster(db, net, settings, CHIEF.id, groups=1)
    await tg.send(admin, f"/ban {CHIEF.id}")
    assert tg.screen(admin).has("admin.ban_refused")
    await tg.press(admin, f"admin_block:{CHIEF.id}")
    assert "admin.ban_refused" in tg.toast_keys()
    row = await users.get(db, CHIEF.id)
    assert row is not None and row.status == "active"
    assert (await config_row(db, CHIEF.id))["active"] is True
    # Nor can one super admin ban the other the other way round.
    await tg.send(CHIEF, f"/ban {ADMIN_ID}")
    assert tg.screen(CHIEF).has("admin.ban_refused")
    # An ordinary user with the same username once it changed hands can be banned.
    await tg.send(TgUser(IMPOSTOR_ID, username="chief"), "/start")
    await tg.send(admin, f"/ban {IMPOSTOR_ID}")
    assert tg.screen(admin).has("admin.banned")
    impostor = await users.get(db, IMPOSTOR_ID)
    assert impostor is not None and impostor.status == "banned"
