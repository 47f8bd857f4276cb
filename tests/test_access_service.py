"""services.access: the allowed rule, expiry arithmetic, grants, bans (against the real database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from db import configs, users
from db.rows import BotUser, Config
from services import access
from tests.conftest import ADMIN_ID

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _row(status: str, expires_at: datetime | None, user_id: int = 1) -> BotUser:
    return BotUser(user_id, None, "A", None, None, None, status, expires_at, None, NOW, NOW, NOW)


@pytest.mark.parametrize(
    ("status", "expires_at", "allowed"),
    [
        ("active", None, True),
        ("active", NOW + timedelta(seconds=1), True),
        ("active", NOW, False),
        ("active", NOW - timedelta(days=1), False),
        ("pending", NOW + timedelta(days=1), False),
        ("pending", NOW, False),
        ("banned", None, False),
        ("banned", NOW + timedelta(days=1), False),
    ],
)
def test_is_allowed(status: str, expires_at: datetime | None, allowed: bool) -> None:
    assert access.is_allowed(_row(status, expires_at), NOW) is allowed


def test_is_allowed_none_and_super_admin() -> None:
    assert access.is_allowed(None, NOW) is False
    assert access.is_allowed(_row("pending", NOW, user_id=5), NOW, is_admin=True) is True
    assert access.is_allowed(None, NOW, is_admin=True) is True


@pytest.mark.parametrize(
    ("current", "status", "days", "expected"),
    [
        (NOW + timedelta(days=10), "active", 30, NOW + timedelta(days=40)),  # extends from the future expiry
        (NOW - timedelta(days=10), "active", 30, NOW + timedelta(days=30)),  # an old expiry counts from now
        (NOW - timedelta(days=10), "pending", 7, NOW + timedelta(days=7)),
        (NOW + timedelta(days=10), "active", -30, NOW - timedelta(days=20)),
        (NOW - timedelta(days=10), "active", -30, NOW - timedelta(days=30)),  # max(now, current) - 30
        (None, "active", 30, None),  # permanent stays permanent
        (None, "active", -30, NOW - timedelta(days=30)),
        (None, "pending", 30, NOW + timedelta(days=30)),
        (NOW, "active", 3650, NOW + timedelta(days=3650)),
    ],
)
def test_new_expiry(current, status, days, expected) -> None:
    assert access.new_expiry(current, status, NOW, days) == expected


async def test_grant_creates_row_activates_and_claims_the_message_once(db) -> None:
    first = await access.grant(db, 42, 30)
    assert first.row.status == "active" and first.notify_granted
    second = await access.grant(db, 42, 30)
    assert not second.notify_granted  # already allowed: not a new grant
    assert second.row.expires_at is not None and first.row.expires_at is not None
    assert second.row.expires_at - first.row.expires_at == pytest.approx(timedelta(days=30), abs=timedelta(seconds=5))


async def test_concurrent_grants_claim_the_message_once(database_url) -> None:
    import psycopg

    conns = [await psycopg.AsyncConnection.connect(database_url, autocommit=True) for _ in range(5)]
    try:
        await users.set_access(conns[0], 43, status="pending", expires_at=datetime.now(UTC))
        changes = await asyncio.gather(*(access.grant(c, 43, 30) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sum(c.notify_granted for c in changes) == 1


async def test_grant_lifts_a_ban(db, settings) -> None:
    await access.ban(db, 44, settings)
    change = await access.grant(db, 44, 7)
    assert change.row.status == "active" and change.notify_granted


async def test_grant_rejects_days_out_of_range(db) -> None:
    for days in (0, -1, 36501):
        with pytest.raises(ValueError):
            await access.grant(db, 45, days)
    assert await users.get(db, 45) is None


async def test_expiry_into_the_past_stops_the_broadcast(db) -> None:
    await access.grant(db, 46, 7)
    await _active_config(db, 46)
    change = await access.adjust(db, 46, -30)
    assert change.stopped and not change.row.allowed_at(datetime.now(UTC))
    assert (await _config(db, 46)).active is False


async def test_regrant_after_expiry_notifies_again(db) -> None:
    await access.grant(db, 47, 7)
    await access.adjust(db, 47, -30)
    assert (await _user(db, 47)).granted_notified_at is None
    assert (await access.grant(db, 47, 30)).notify_granted


async def test_ban_is_durable_stops_broadcast_and_refuses_super_admins(db, settings) -> None:
    await access.grant(db, 48, 30)
    await _active_config(db, 48)
    assert await access.ban(db, 48, settings) is access.BanResult.banned
    assert (await _user(db, 48)).status == "banned"
    assert (await _config(db, 48)).active is False
    assert await access.ban(db, ADMIN_ID, settings) is access.BanResult.refused_admin
    assert await users.get(db, ADMIN_ID) is None


async def test_unban_makes_pending_and_ignores_not_banned(db, settings) -> None:
    await access.ban(db, 49, settings)
    row = await access.unban(db, 49)
    assert row is not None and row.status == "pending" and not row.allowed_at(datetime.now(UTC))
    assert await access.unban(db, 49) is None  # no longer banned
    await access.grant(db, 50, 30)
    assert await access.unban(db, 50) is None
    assert (await _user(db, 50)).status == "active"


async def _active_config(db, owner_id: int) -> None:
    cur = await db.execute(
        "INSERT INTO messages (owner_id, kind, text, content_hash) VALUES (%(o)s, 'text', 'hi', 'h') RETURNING id",
        {"o": owner_id},
    )
    message_id = (await cur.fetchone())[0]
    await configs.set_message(db, owner_id, message_id)
    await configs.activate(db, owner_id, 5, datetime.now(UTC))
    assert (await _config(db, owner_id)).active


async def _user(db, user_id: int) -> BotUser:
    row = await users.get(db, user_id)
    assert row is not None
    return row


async def _config(db, owner_id: int) -> Config:
    row = await configs.get(db, owner_id)
    assert row is not None
    return row
