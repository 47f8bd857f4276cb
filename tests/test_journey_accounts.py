"""The accounts screen through the bot (docs/bot.md, "Accounts"): list, Add, Log out per account, the
limit, the menu's old Log out with several accounts, and which account posts to a group."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from db import accounts
from db import groups as db_groups
from tests.harness import Telegram, TgUser
from tests.journey_helpers import add_groups, allow, log_in, make_groups, spaced
from userbot.fake import FakeGroup, FakeTelegram

SECOND = "+998907654321"


@pytest.fixture
async def allowed(db, user: TgUser) -> TgUser:
    await allow(db, user)
    return user


async def add_account(tg: Telegram, net: FakeTelegram, user: TgUser, phone: str, *,
                      groups: Sequence[FakeGroup] = (), name: str = "") -> int:
    """Another account through the accounts screen's Add; returns its Telegram user id."""
    uid = await net.add_account(phone, name=name)
    await add_groups(net, uid, groups)
    await tg.press(user, "accounts")
    await tg.press(user, "account_add")
    await tg.send(user, phone)
    code = await net.last_code(phone)
    assert code is not None
    await tg.send(user, spaced(code))
    return uid


async def test_the_screen_lists_each_account_with_its_state(tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(2))
    await tg.press(allowed, "add_all_groups:0")
    await add_account(tg, net, allowed, SECOND, groups=make_groups(1, start=10), name="Shop two")
    assert tg.screen(allowed).has("login.account_added")
    owned = await accounts.list_for_owner(db, allowed.id)
    assert [a.phone for a in owned] == ["+998901234567", SECOND] and owned[1].name == "Shop two"

    await db.execute("UPDATE accounts SET flood_until = now() + interval '1 hour' WHERE id = %(a)s",
                     {"a": owned[1].id})
    await tg.press(allowed, "accounts")
    screen = tg.screen(allowed)
    assert screen.has("accounts.title", "accounts.line_active", "accounts.line_paused")
    assert "+998*******67" in screen.text and "+998*******21" in screen.text and "Shop two" in screen.text
    assert SECOND not in screen.text  # masked
    assert screen.callbacks == [f"account_logout:{owned[0].id}", f"account_logout:{owned[1].id}", "account_add",
                                "back_to_menu"]

    await db.execute("UPDATE accounts SET status = 'revoked' WHERE id = %(a)s", {"a": owned[1].id})
    await tg.press(allowed, "accounts")
    screen = tg.screen(allowed)
    assert screen.has("accounts.line_revoked")
    assert screen.callbacks[1:3] == ["account_add", f"account_logout:{owned[1].id}"]  # log in again, or out


async def test_groups_of_every_account_are_offered_each_once(tg: Telegram, net, db, allowed: TgUser) -> None:
    shared = make_groups(1, start=30)
    await log_in(tg, net, allowed, groups=[*make_groups(2), *shared])
    second = await add_account(tg, net, allowed, SECOND, groups=[*make_groups(2, start=20), *shared])
    await tg.press(allowed, "add_group")
    shown = [c for c in tg.screen(allowed).callbacks if c.startswith("import_group:")]
    assert len(shown) == 5  # the shared group once
    await tg.press(allowed, "add_all_groups:0")
    owned = await accounts.list_for_owner(db, allowed.id)
    cur = await db.execute("SELECT chat_id, account_id FROM groups WHERE owner_id = %(o)s", {"o": allowed.id})
    by_chat = dict(await cur.fetchall())
    assert by_chat[shared[0].chat_id] == owned[0].id  # reachable from both: the first account
    assert {by_chat[g.chat_id] for g in make_groups(2, start=20)} == {owned[1].id}
    assert second  # the second account's own groups are posted from it

    # The user moves the shared group to the second account; a group only one account is in stays.
    await tg.press(allowed, "select_groups")
    assert "group_accounts:0" in tg.screen(allowed).callbacks
    await tg.press(allowed, "group_accounts:0")
    assert f"group_account:{shared[0].chat_id}:0" in tg.screen(allowed).callbacks
    await tg.press(allowed, f"group_account:{shared[0].chat_id}:0")
    assert "groups.account_set" in tg.toast_keys()
    assert (await db_groups.get(db, allowed.id, shared[0].chat_id)).account_id == owned[1].id  # type: ignore[union-attr]
    await tg.press(allowed, f"group_account:{shared[0].chat_id}:0")
    assert (await db_groups.get(db, allowed.id, shared[0].chat_id)).account_id == owned[0].id  # type: ignore[union-attr]
    only_first = make_groups(1)[0].chat_id
    await tg.press(allowed, f"group_account:{only_first}:0")
    assert "groups.no_other_account" in tg.toast_keys()
    assert (await db_groups.get(db, allowed.id, only_first)).account_id == owned[0].id  # type: ignore[union-attr]


@pytest.mark.parametrize("settings_overrides", [{"max_accounts_per_user": 2}])
async def test_the_limit_is_kept(tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed)
    await add_account(tg, net, allowed, SECOND)
    await tg.press(allowed, "accounts")
    assert "account_add" not in tg.screen(allowed).callbacks
    await tg.press(allowed, "account_add")  # an old button
    assert "accounts.limit" in tg.toast_keys()
    assert await accounts.count(db, allowed.id) == 2

    # With one session ended, Add logs that account in again; another account is refused at the end.
    owned = await accounts.list_for_owner(db, allowed.id)
    await db.execute("UPDATE accounts SET status = 'revoked' WHERE id = %(a)s", {"a": owned[1].id})
    await add_account(tg, net, allowed, "+998905550000")
    assert tg.screen(allowed).has("login.too_many_accounts")
    assert [a.phone for a in await accounts.list_for_owner(db, allowed.id)] == ["+998901234567", SECOND]
    await add_account(tg, net, allowed, SECOND)
    again = await accounts.list_for_owner(db, allowed.id)
    assert [(a.id, a.status) for a in again] == [(owned[0].id, "active"), (owned[1].id, "active")]


async def test_logging_out_one_account_keeps_the_others_and_the_broadcast(tg: Telegram, net, db,
                                                                           allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(1))
    await add_account(tg, net, allowed, SECOND, groups=make_groups(2, start=20))
    await tg.press(allowed, "add_all_groups:0")
    await db.execute("INSERT INTO configs (owner_id, active) VALUES (%(o)s, false)", {"o": allowed.id})
    first, second = await accounts.list_for_owner(db, allowed.id)

    await tg.press(allowed, "logout")  # the menu's Log out, with several accounts: the accounts screen
    assert tg.screen(allowed).has("accounts.title")
    await tg.press(allowed, "logout_confirm")  # an old confirmation names no account: nothing is done
    assert await accounts.count(db, allowed.id) == 2

    await tg.press(allowed, f"account_logout:{second.id}")
    screen = tg.screen(allowed)
    assert screen.has("accounts.logout_confirm")
    assert screen.callbacks == [f"account_logout_ok:{second.id}", "accounts"]
    await tg.press(allowed, f"account_logout_ok:{second.id}")
    assert [a.id for a in await accounts.list_for_owner(db, allowed.id)] == [first.id]
    assert tg.screen(allowed).has("accounts.title", "accounts.no_account_groups")
    cur = await db.execute("SELECT count(*) FILTER (WHERE account_id IS NULL), count(*) FROM groups"
                           " WHERE owner_id = %(o)s AND selected", {"o": allowed.id})
    assert tuple(await cur.fetchone()) == (2, 3)

    # The last one: as the menu's Log out always was.
    await tg.press(allowed, f"account_logout:{first.id}")
    assert tg.screen(allowed).has("accounts.logout_confirm_last")
    await tg.press(allowed, f"account_logout_ok:{first.id}")
    assert tg.screen(allowed).has("login.logged_out", "menu.not_connected")

    # Logging in again gives the groups with no account to the new account.
    await log_in(tg, net, allowed, phone="+998901112233")
    cur = await db.execute("SELECT count(*) FROM groups WHERE owner_id = %(o)s AND account_id IS NULL",
                           {"o": allowed.id})
    assert (await cur.fetchone())[0] == 0


async def test_the_menu_counts_several_accounts(tg: Telegram, net, allowed: TgUser) -> None:
    await log_in(tg, net, allowed)
    await tg.press(allowed, "back_to_menu")
    assert not tg.screen(allowed).has("menu.status_accounts")
    assert "accounts" in tg.screen(allowed).callbacks
    await add_account(tg, net, allowed, SECOND)
    await tg.press(allowed, "back_to_menu")
    assert tg.screen(allowed).has("menu.status_accounts")
