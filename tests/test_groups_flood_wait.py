"""Importing groups never waits on Telegram inside the webhook request: a flood wait on the dialog
listing is answered at once with "Telegram asks to wait N s" (and remembered until it ends, so
presses meanwhile do not ask Telegram again), a listing that takes too long is cut off, and the
user's list is never touched by a listing that failed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services import groups as groups_service
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in, make_groups
from userbot.fake import FakeGateway
from userbot.gateway import GroupInfo

LARGE = 2000


async def _account(db, owner_id: int) -> int:
    cur = await db.execute("SELECT id FROM accounts WHERE owner_id = %(o)s ORDER BY id LIMIT 1", {"o": owner_id})
    return int((await cur.fetchone())[0])


@pytest.fixture
async def allowed(db, user: TgUser) -> TgUser:
    await allow(db, user)
    return user


async def selected(db, owner: int) -> set[int]:
    cur = await db.execute("SELECT chat_id FROM groups WHERE owner_id = %(o)s AND selected", {"o": owner})
    return {int(r[0]) for r in await cur.fetchall()}


def last_toast(tg: Telegram) -> str:
    return tg.toasts()[-1]


async def test_flood_wait_on_a_large_account_is_answered_at_once_and_nothing_is_lost(
    tg: Telegram, net, db, redis, settings, allowed: TgUser
) -> None:
    found = make_groups(LARGE)
    uid = await log_in(tg, net, allowed, groups=found)
    await tg.press(allowed, "add_group")
    assert tg.screen(allowed).has("groups.import_header") and str(LARGE) in tg.screen(allowed).text
    picked = [found[0].chat_id, found[1].chat_id]
    for chat_id in picked:
        await tg.press(allowed, f"import_group:{chat_id}:0")
    assert await selected(db, allowed.id) == set(picked)
    shown = tg.screen(allowed)

    account_id = await _account(db, allowed.id)
    await redis.delete(groups_service.cache_key(settings, allowed.id, account_id))  # the cached minute is over
    await net.fail_next(uid, "FLOOD_WAIT_30")
    await tg.press(allowed, "add_group")
    assert "groups.flood_wait" in tg.toast_keys() and "30" in last_toast(tg)
    assert await net.pending_faults(uid) == []  # the listing asked Telegram once and got the wait

    # Every other way in is answered from the remembered wait, without asking Telegram again.
    await net.fail_next(uid, "FLOOD_WAIT_999")  # would show if the listing reached Telegram
    for data in ("add_group_page:1", f"import_group:{found[5].chat_id}:0", "add_all_groups:0"):
        toasts = len(tg.toasts())
        await tg.press(allowed, data)
        assert len(tg.toasts()) == toasts + 1
        assert "groups.flood_wait" in tg.toast_keys() and "999" not in last_toast(tg)
    # Nothing was lost: the list is as it was, and the import screen was not replaced by an error.
    assert await selected(db, allowed.id) == set(picked)
    after = tg.screen(allowed)
    assert (after.text, after.callbacks) == (shown.text, shown.callbacks)
    await tg.send(allowed, "/import_groups")
    assert tg.screen(allowed).has("groups.flood_wait")
    assert await net.pending_faults(uid) == ["FLOOD_WAIT_999"]
    assert 0 < await redis.ttl(groups_service.flood_key(settings, allowed.id, account_id)) <= 30
    assert await selected(db, allowed.id) == set(picked)

    await redis.delete(groups_service.flood_key(settings, allowed.id, account_id))  # the wait is over
    await redis.delete(f"{net.p}faults:{uid}")
    await tg.press(allowed, "add_all_groups:0")
    assert "groups.added_n" in tg.toast_keys()
    assert len(await selected(db, allowed.id)) == LARGE


async def test_other_queued_faults_are_left_for_the_sends(tg: Telegram, net, allowed: TgUser) -> None:
    uid = await log_in(tg, net, allowed, groups=make_groups(3))
    await net.fail_next(uid, "RPC_CALL_FAIL")
    await tg.press(allowed, "add_group")
    assert tg.screen(allowed).has("groups.import_header")
    assert await net.pending_faults(uid) == ["RPC_CALL_FAIL"]


async def test_a_listing_that_takes_too_long_is_cut_off(
    tg: Telegram, net, db, monkeypatch: pytest.MonkeyPatch, allowed: TgUser
) -> None:
    await log_in(tg, net, allowed, groups=make_groups(3))
    never = asyncio.Event()

    async def stuck(self: FakeGateway, session: str) -> Sequence[GroupInfo]:
        await never.wait()
        return []

    monkeypatch.setattr(FakeGateway, "list_groups", stuck)
    monkeypatch.setattr(groups_service, "LIST_TIMEOUT_S", 0.05)
    await tg.press(allowed, "add_all_groups:0")
    assert "groups.fetch_failed" in tg.toast_keys()
    assert await selected(db, allowed.id) == set()


def test_flood_wait_text_in_every_language() -> None:
    from core.i18n import LANGUAGES, t

    for lang in LANGUAGES:
        text = t(lang, "groups.flood_wait", seconds=42)
        assert "42" in text and len(text) <= 200  # a callback alert holds 200 characters
