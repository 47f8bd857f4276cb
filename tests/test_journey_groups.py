"""The group list and importing groups from the account, including forged and out-of-range presses."""

from __future__ import annotations

import json

import pytest

from core.i18n import t
from db import accounts
from db import groups as db_groups
from tests.harness import Telegram, TgUser
from tests.journey_helpers import add_groups, allow, log_in, make_groups
from userbot.fake import FakeGroup


@pytest.fixture
async def allowed(db, user: TgUser) -> TgUser:
    await allow(db, user)
    return user


async def _rows(db, owner: int) -> dict[int, tuple]:
    cur = await db.execute(
        "SELECT chat_id, title, kind, access_hash, selected FROM groups WHERE owner_id = %(o)s", {"o": owner}
    )
    return {r[0]: r[1:] for r in await cur.fetchall()}


async def test_buttons_need_a_login(tg: Telegram, allowed: TgUser) -> None:
    for data in ("select_groups", "add_group", "add_all_groups:0", "import_group:-100:0", "toggle_group:-100:0",
                 "deselect_all_groups", "select_groups_page:1", "add_group_page:1"):
        await tg.press(allowed, data)
        assert "menu.need_login" in tg.toast_keys()
        assert tg.screen(allowed).callbacks == ["login", "full_manual"]


async def test_empty_list(tg: Telegram, net, allowed: TgUser) -> None:
    await log_in(tg, net, allowed)
    await tg.press(allowed, "select_groups")
    screen = tg.screen(allowed)
    assert screen.has("groups.list_title", "groups.list_empty")
    assert screen.callbacks == ["add_group", "add_all_groups:0", "back_to_menu"]


async def test_list_pages_ten_at_a_time(tg: Telegram, net, db, allowed: TgUser) -> None:
    found = make_groups(12)
    await log_in(tg, net, allowed, groups=found)
    await tg.press(allowed, "add_all_groups:0")
    ids = sorted((g.title, g.chat_id) for g in found)
    await tg.press(allowed, "select_groups")
    screen = tg.screen(allowed)
    assert screen.has("groups.list_title", "groups.page") and "12" in screen.text
    assert screen.callbacks == [f"toggle_group:{cid}:0" for _, cid in ids[:10]] + [
        "select_groups_page:1", "deselect_all_groups", "add_group", "add_all_groups:0", "back_to_menu"]
    await tg.press(allowed, "select_groups_page:1")
    screen = tg.screen(allowed)
    assert screen.callbacks[:3] == [f"toggle_group:{cid}:1" for _, cid in ids[10:]] + ["select_groups_page:0"]


@pytest.mark.parametrize(("requested", "shown"), [(99, 1), (-5, 0)])
async def test_list_page_out_of_range_is_clamped(tg: Telegram, net, allowed: TgUser, requested: int,
                                                 shown: int) -> None:
    await log_in(tg, net, allowed, groups=make_groups(12))
    await tg.press(allowed, "add_all_groups:0")
    await tg.press(allowed, f"select_groups_page:{requested}")
    screen = tg.screen(allowed)
    toggles = [c for c in screen.callbacks if c.startswith("toggle_group:")]
    assert toggles and all(c.endswith(f":{shown}") for c in toggles)
    assert len(toggles) == (2 if shown == 1 else 10)


async def test_import_screen_two_per_row_with_header_and_nav(tg: Telegram, net, allowed: TgUser) -> None:
    found = make_groups(12)
    await log_in(tg, net, allowed, groups=found)
    await tg.press(allowed, "add_group")
    screen = tg.screen(allowed)
    assert screen.has("groups.import_header")
    assert "1/2" in screen.text and "0/12" in screen.text
    imports = [c for c in screen.callbacks if c.startswith("import_group:")]
    assert imports == [f"import_group:{g.chat_id}:0" for g in sorted(found, key=lambda g: g.chat_id)][:10]
    rows = screen.raw["reply_markup"]["inline_keyboard"]
    assert [len(r) for r in rows[:5]] == [2, 2, 2, 2, 2]
    assert screen.callbacks[10:] == ["add_group_page:1", "add_all_groups:0", "select_groups"]
    assert all(b["text"].startswith("➕") for r in rows[:5] for b in r)


@pytest.mark.parametrize(("requested", "header"), [(7, "2/2"), (-1, "1/2")])
async def test_import_page_out_of_range_is_clamped(tg: Telegram, net, allowed: TgUser, requested: int,
                                                   header: str) -> None:
    await log_in(tg, net, allowed, groups=make_groups(12))
    await tg.press(allowed, f"add_group_page:{requested}")
    screen = tg.screen(allowed)
    assert screen.has("groups.import_header") and header in screen.text


async def test_import_toggles_and_stores_what_the_worker_needs(tg: Telegram, net, db, allowed: TgUser) -> None:
    basic = FakeGroup(-4242, "Basic chat", kind="group")
    forum = FakeGroup(-1009999, "Forum <b>", kind="forum", access_hash=77)
    await log_in(tg, net, allowed, groups=[basic, forum])
    await tg.press(allowed, "add_group")
    await tg.press(allowed, f"import_group:{forum.chat_id}:0")
    assert "groups.added" in tg.toast_keys()
    assert (await _rows(db, allowed.id))[forum.chat_id] == ("Forum <b>", "forum", 77, True)
    buttons = {b["callback_data"]: b["text"] for r in tg.screen(allowed).raw["reply_markup"]["inline_keyboard"]
               for b in r}
    assert buttons[f"import_group:{forum.chat_id}:0"].startswith("✅")
    assert buttons[f"import_group:{basic.chat_id}:0"].startswith("➕")
    assert "1/2" in tg.screen(allowed).text

    await tg.press(allowed, f"import_group:{forum.chat_id}:0")
    assert "groups.removed" in tg.toast_keys()
    assert (await _rows(db, allowed.id))[forum.chat_id][-1] is False
    assert await db_groups.count_selected(db, allowed.id) == 0


def _marks(screen) -> dict[str, str]:
    """callback id → the mark in front of the button's title"""
    return {b["callback_data"]: b["text"].split(" ", 1)[0]
            for r in screen.raw["reply_markup"]["inline_keyboard"] for b in r}


async def test_a_mark_means_the_same_on_both_screens(tg: Telegram, net, allowed: TgUser) -> None:
    kept, other = make_groups(2)
    await log_in(tg, net, allowed, groups=[kept, other])
    await tg.press(allowed, "add_group")
    await tg.press(allowed, f"import_group:{kept.chat_id}:0")
    imported = _marks(tg.screen(allowed))
    await tg.press(allowed, "select_groups")
    listed = _marks(tg.screen(allowed))
    # The same group in the list carries the same mark on the list and on the import screen; a group
    # out of the list has another one, and no screen uses the old ❌ that meant both.
    assert listed[f"toggle_group:{kept.chat_id}:0"] == imported[f"import_group:{kept.chat_id}:0"] == "✅"
    assert imported[f"import_group:{other.chat_id}:0"] == "➕"
    assert "❌" not in {*listed.values(), *imported.values()}
    assert tg.screen(allowed).has("groups.page")
    # Pressing a ✅ takes the group out on either screen (the ids are unchanged).
    await tg.press(allowed, f"toggle_group:{kept.chat_id}:0")
    assert "groups.removed" in tg.toast_keys()
    await tg.press(allowed, "add_group")
    assert _marks(tg.screen(allowed))[f"import_group:{kept.chat_id}:0"] == "➕"


async def test_import_of_a_group_not_in_the_account_is_refused(tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(2))
    foreign = FakeGroup(-1005555, "Someone else's")
    await net.add_group(foreign)  # exists on the network, the account is not a member
    await tg.press(allowed, "add_group")
    await tg.press(allowed, f"import_group:{foreign.chat_id}:0")
    assert "groups.not_found" in tg.toast_keys()
    assert await _rows(db, allowed.id) == {}


async def test_read_only_groups_are_not_offered(tg: Telegram, net, allowed: TgUser) -> None:
    writable, readonly = make_groups(2)
    await log_in(tg, net, allowed, groups=[writable, readonly])
    await net.forbid_all(readonly.chat_id)
    await tg.press(allowed, "add_group")
    assert f"import_group:{readonly.chat_id}:0" not in tg.screen(allowed).callbacks
    await tg.press(allowed, f"import_group:{readonly.chat_id}:0")
    assert "groups.not_found" in tg.toast_keys()


async def test_equal_titles_are_all_shown(tg: Telegram, net, allowed: TgUser) -> None:
    twins = [FakeGroup(-1001, "Same name"), FakeGroup(-1002, "Same name"), FakeGroup(-1003, "Same name")]
    await log_in(tg, net, allowed, groups=twins)
    await tg.press(allowed, "add_group")
    assert [c for c in tg.screen(allowed).callbacks if c.startswith("import_group:")] == [
        "import_group:-1003:0", "import_group:-1002:0", "import_group:-1001:0"]


async def test_no_groups_in_the_account(tg: Telegram, net, allowed: TgUser) -> None:
    await log_in(tg, net, allowed)
    await tg.press(allowed, "add_group")
    screen = tg.screen(allowed)
    assert screen.has("groups.none_found") and screen.callbacks == ["select_groups"]


async def test_account_groups_are_cached_for_a_minute(tg: Telegram, net, db, redis, settings,
                                                     allowed: TgUser) -> None:
    uid = await log_in(tg, net, allowed, groups=make_groups(1))
    await tg.press(allowed, "add_group")
    account = await accounts.get(db, allowed.id)
    assert account is not None
    key = f"{settings.redis_prefix}groups:{allowed.id}:{account.id}"  # each account's listing apart
    assert 0 < await redis.ttl(key) <= 60
    assert len(json.loads(await redis.get(key))) == 1
    late = make_groups(1, start=50)
    await add_groups(net, uid, late)
    await tg.press(allowed, "add_group_page:0")
    assert f"import_group:{late[0].chat_id}:0" not in tg.screen(allowed).callbacks  # served from the cache
    await redis.delete(key)  # the minute is over
    await tg.press(allowed, "add_group")
    assert f"import_group:{late[0].chat_id}:0" in tg.screen(allowed).callbacks


async def test_add_all_then_all_already(tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(3))
    await tg.press(allowed, "add_all_groups:0")
    assert "groups.added_n" in tg.toast_keys()
    assert await db_groups.count_selected(db, allowed.id) == 3
    assert "3/3" in tg.screen(allowed).text
    await tg.press(allowed, "add_all_groups:0")
    assert "groups.all_already" in tg.toast_keys()


async def test_toggle_removes_only_own_groups(tg: Telegram, net, db, allowed: TgUser) -> None:
    mine = make_groups(2)
    await log_in(tg, net, allowed, groups=mine)
    await tg.press(allowed, "add_all_groups:0")
    other = TgUser(700_000_099, first_name="Other")
    await allow(db, other)
    theirs = make_groups(1, start=80)
    await log_in(tg, net, other, phone="+998907654321", groups=theirs)
    await tg.press(other, "add_all_groups:0")

    await tg.press(allowed, "select_groups")
    await tg.press(allowed, f"toggle_group:{mine[0].chat_id}:0")
    assert "groups.removed" in tg.toast_keys()
    assert await db_groups.selected_ids(db, allowed.id) == {mine[1].chat_id}
    assert tg.screen(allowed).callbacks[0] == f"toggle_group:{mine[1].chat_id}:0"

    await tg.press(allowed, f"toggle_group:{theirs[0].chat_id}:0")  # forged: another user's group
    assert "groups.not_found" in tg.toast_keys()
    assert await db_groups.selected_ids(db, other.id) == {theirs[0].chat_id}


async def test_deselect_all(tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(4))
    await tg.press(allowed, "add_all_groups:0")
    await tg.press(allowed, "select_groups")
    await tg.press(allowed, "deselect_all_groups")
    assert "groups.all_removed" in tg.toast_keys()
    assert await db_groups.count_selected(db, allowed.id) == 0
    screen = tg.screen(allowed)
    assert screen.has("groups.list_empty") and "deselect_all_groups" not in screen.callbacks


async def test_import_groups_command(tg: Telegram, net, db, allowed: TgUser) -> None:
    found = make_groups(5)
    await log_in(tg, net, allowed, groups=found)
    await tg.press(allowed, "add_group")
    await tg.press(allowed, f"import_group:{found[0].chat_id}:0")
    await tg.send(allowed, "/import_groups")
    screen = tg.screen(allowed)
    assert screen.has("groups.imported")
    assert screen.text == t(allowed.language_code or "en", "groups.imported", n=4, added=4, already=1)
    assert await db_groups.count_selected(db, allowed.id) == 5


async def test_import_groups_command_needs_a_login(tg: Telegram, allowed: TgUser) -> None:
    await tg.send(allowed, "/import_groups")
    screen = tg.screen(allowed)
    assert screen.has("menu.need_login", "menu.not_connected")


async def test_a_new_login_does_not_offer_the_previous_accounts_cached_groups(tg: Telegram, net,
                                                                               allowed: TgUser) -> None:
    first, second = make_groups(1), make_groups(1, start=60)
    await log_in(tg, net, allowed, groups=first)
    await tg.press(allowed, "add_group")  # cached now
    await tg.press(allowed, "logout")
    await tg.press(allowed, "logout_confirm")
    await log_in(tg, net, allowed, phone="+998935550000", groups=second)
    await tg.press(allowed, "add_group")
    imports = [c for c in tg.screen(allowed).callbacks if c.startswith("import_group:")]
    assert imports == [f"import_group:{second[0].chat_id}:0"]
