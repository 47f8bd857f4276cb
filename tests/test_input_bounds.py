"""Numbers in callback data and command arguments are bounded before they reach SQL (core/bounds.py).

Out of range (a user id of 0, -5 or 2^63, a page beyond 32 bits, ...) a button does not parse and
gets the "outdated button" answer, a command gets its usage text; nothing crashes (no ERROR record)
and no `bot_users` row is written. In range but unknown, the admin card's buttons answer "user not
found" and write nothing either. Every `CallbackData` factory is swept with the boundary values,
pressed through the webhook by the super admin and by an allowed, logged-in user.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, get_args

import pytest
from aiogram.filters.callback_data import CallbackData

import handlers
from core import bounds
from db import announcements, users
from handlers import callbacks as cb
from handlers.admin.commands import parse_adduser, parse_id
from jobs.announce import deliver, run_announcement
from tests.conftest import ADMIN_ID, BOT_TOKEN, ErrorRecords
from tests.harness import Telegram, TgUser
from tests.runtime_helpers import make_broadcaster, run_job
from worker.botapi import BotApiClient

OWNER = 730_000_001  # allowed, logged in, with groups and history: the user-side buttons do real work
TARGET = 730_000_009  # an existing user the admin buttons may act on

BOUNDARIES = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**19 - 1]


def _factories() -> list[type[CallbackData]]:
    """Every factory of every handlers module (feature packages included)."""
    for module in pkgutil.walk_packages(handlers.__path__, "handlers."):
        importlib.import_module(module.name)
    found: list[type[CallbackData]] = []
    todo = list(CallbackData.__subclasses__())
    while todo:
        factory = todo.pop()
        todo += factory.__subclasses__()
        if factory.__module__.startswith("handlers."):
            found.append(factory)
    return sorted(found, key=lambda f: f.__prefix__)


FACTORIES = _factories()
# The shared bounded types (handlers/callbacks.py) and their ranges: every integer field uses one.
BOUNDED_TYPES = {cb.UserId: bounds.USER_ID, cb.RowId: bounds.ROW_ID, cb.ChatId: bounds.CHAT_ID, cb.Page: bounds.PAGE,
                 cb.Minutes: bounds.INTERVAL_MINUTES}
# A valid value for the fields of the contract's factories, so that one field at a time can carry the
# boundary value (others: "1" for a number, the first member of an enum, "x" for text).
VALID = {"page": "0", "chat_id": "-1001", "id": str(TARGET), "minutes": "3", "view": "all", "code": "en"}


def _bound(factory: type[CallbackData], field: str) -> bounds.Bound | None:
    """The range of an integer field, found from the bounded type it was declared with."""
    metadata = factory.model_fields[field].metadata
    return next((bound for alias, bound in BOUNDED_TYPES.items() if list(get_args(alias)[1:]) == metadata), None)


def _valid(factory: type[CallbackData], field: str) -> str:
    if field in VALID:
        return VALID[field]
    annotation = factory.model_fields[field].annotation
    if annotation is int:
        return "1"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return str(next(iter(annotation)).value)
    return "x"


def _data(factory: type[CallbackData], field: str | None, value: object) -> str:
    """The factory's data with `value` in `field` (or, with no fields, as an extra part)."""
    fields = list(factory.model_fields)
    if field is None:
        return f"{factory.__prefix__}:{value}"
    parts = [str(value) if name == field else _valid(factory, name) for name in fields]
    return ":".join([factory.__prefix__, *parts])


def _parses(factory: type[CallbackData], data: str) -> bool:
    try:
        factory.unpack(data)
    except (TypeError, ValueError):
        return False
    return True


def _fields(factory: type[CallbackData]) -> list[str | None]:
    """The fields one at a time; None for a factory without any (the value then goes in an extra part)."""
    return [*factory.model_fields] or [None]


SWEEP = [(factory, field, value) for factory in FACTORIES for field in _fields(factory) for value in BOUNDARIES]


# ---- the bounds themselves (pure) ---------------------------------------------------------------


def test_every_integer_field_of_every_factory_is_bounded() -> None:
    assert {cb.AdminUser, cb.ToggleGroup, cb.HistoryView} <= set(FACTORIES)
    for factory in FACTORIES:
        for field, info in factory.model_fields.items():
            if info.annotation is int:
                bound = _bound(factory, field)
                assert bound is not None, f"{factory.__name__}.{field}: not one of the bounded types"
                assert _parses(factory, _data(factory, field, bound.low))
                assert _parses(factory, _data(factory, field, bound.high))
                assert not _parses(factory, _data(factory, field, bound.low - 1)), (factory, field)
                assert not _parses(factory, _data(factory, field, bound.high + 1)), (factory, field)


def test_the_contracts_ids_have_their_kinds_range() -> None:
    expected: list[tuple[tuple[type[CallbackData], ...], str, bounds.Bound]] = [
        ((cb.AdminUser, cb.AdminAddWeek, cb.AdminAddMonth, cb.AdminAddVip, cb.AdminSubMonth, cb.AdminBlock,
          cb.AdminUnban), "id", bounds.USER_ID),
        ((cb.HistoryView, cb.HistoryUse, cb.HistoryDelete), "id", bounds.ROW_ID),
        ((cb.ToggleGroup, cb.ImportGroup), "chat_id", bounds.CHAT_ID),
        ((cb.SelectGroupsPage, cb.AddGroupPage, cb.AddAllGroups, cb.SentMessagesPage, cb.AdminPanel, cb.ToggleGroup,
          cb.ImportGroup), "page", bounds.PAGE),
        ((cb.SetInterval,), "minutes", bounds.INTERVAL_MINUTES),
    ]
    for factories, field, bound in expected:
        for factory in factories:
            assert _bound(factory, field) is bound, (factory, field)


@pytest.mark.parametrize(("factory", "field", "value"), [s for s in SWEEP if s[1] is not None and
                                                           _bound(s[0], s[1]) is not None])
def test_boundary_values_parse_exactly_within_the_fields_range(factory, field: str, value: int) -> None:
    bound = _bound(factory, field)
    assert bound is not None
    assert _parses(factory, _data(factory, field, value)) == (value in bound)


@pytest.mark.parametrize("text", ["+5", "5.0", "1_000", " 5", "٥", "0x10", "1e3", "", "-"])
def test_only_the_plain_decimal_form_parses(text: str) -> None:
    assert bounds.parse_int(text, bounds.CHAT_ID) is None
    assert not _parses(cb.AdminUser, f"admin_user:{text}")


@pytest.mark.parametrize(
    ("text", "bound", "expected"),
    [
        ("1", bounds.USER_ID, 1), ("0", bounds.USER_ID, None), ("-1", bounds.USER_ID, None),
        (str(2**63 - 1), bounds.USER_ID, 2**63 - 1), (str(2**63), bounds.USER_ID, None),
        ("9999999999999999999", bounds.USER_ID, None), ("0" * 19 + "5", bounds.USER_ID, None),
        (str(-(2**63)), bounds.CHAT_ID, -(2**63)), (str(-(2**63) - 1), bounds.CHAT_ID, None),
        ("-0", bounds.CHAT_ID, 0), ("007", bounds.USER_ID, 7), ("9" * 5000, bounds.CHAT_ID, None),
        (str(2**31 - 1), bounds.PAGE, 2**31 - 1), (str(2**31), bounds.PAGE, None),
        ("36500", bounds.GRANT_DAYS, 36500), ("36501", bounds.GRANT_DAYS, None),
    ],
)
def test_parse_int(text: str, bound: bounds.Bound, expected: int | None) -> None:
    assert bounds.parse_int(text, bound) == expected


@pytest.mark.parametrize("value", BOUNDARIES)
def test_command_parsers_take_user_ids_and_days_in_range_only(value: int) -> None:
    in_range = value in bounds.USER_ID
    assert parse_id(str(value)) == (value if in_range else None)
    assert parse_adduser(str(value)) == ((value, 30) if in_range else None)
    assert parse_adduser(f"5 {value}") == ((5, value) if value in bounds.GRANT_DAYS else None)


def test_a_factory_cannot_be_built_out_of_range() -> None:
    with pytest.raises(ValueError):
        cb.AdminUser(id=0)
    with pytest.raises(ValueError):
        cb.ToggleGroup(chat_id=2**63, page=0)
    assert cb.AdminUser(id=2**63 - 1).pack() == f"admin_user:{2**63 - 1}"


# ---- through the webhook ------------------------------------------------------------------------


async def _user_ids(db) -> set[int]:
    cur = await db.execute("SELECT user_id FROM bot_users")
    return {int(r[0]) for r in await cur.fetchall()}


async def _press(tg: Telegram, errors: ErrorRecords, presser: TgUser, data: str) -> set[str]:
    """Press and return the keys of what the presser was told (toast); checks it was answered once
    and that nothing was logged as an ERROR."""
    tg.api.clear_calls()
    errors.records.clear()
    await tg.press(presser, data)
    assert not [r.getMessage() for r in errors.records], data
    answers = tg.api.calls_of("answerCallbackQuery")
    assert len(answers) == 1, (data, [c.params for c in answers])
    return tg.toast_keys()


@pytest.fixture
async def world(db, net, settings) -> set[int]:
    await make_broadcaster(db, net, settings, OWNER, groups=2, active=False)
    await users.set_access(db, TARGET, status="active", expires_at=datetime.now(UTC) + timedelta(days=5))
    return await _user_ids(db)


@pytest.mark.parametrize("factory", FACTORIES, ids=[f.__prefix__ for f in FACTORIES])
async def test_sweep_every_factory_with_boundary_values(tg: Telegram, db, errors: ErrorRecords, world: set[int],
                                                        admin: TgUser, factory) -> None:
    pressers = [admin, TgUser(OWNER, first_name="Owner")]
    for field in _fields(factory):
        for value in BOUNDARIES:
            data = _data(factory, field, value)
            for presser in pressers:
                keys = await _press(tg, errors, presser, data)
                if not _parses(factory, data):
                    assert keys == {"common.outdated_button"}, (data, presser.id, keys)
                assert await _user_ids(db) == world, (data, presser.id)


@pytest.mark.parametrize(
    "data",
    [f"admin_block:{2**63}", f"admin_add_month:{2**63}", "admin_block:-1", "admin_add_vip:-5",
     "admin_sub_month:0", f"admin_unban:{-(2**63) - 1}", f"admin_user:{10**19 - 1}", f"admin_add_week:{2**63}"],
)
async def test_out_of_range_admin_buttons_are_outdated_and_write_nothing(
    tg: Telegram, db, errors: ErrorRecords, admin: TgUser, data: str
) -> None:
    await users.set_access(db, TARGET, status="active", expires_at=None)
    assert await _press(tg, errors, admin, data) == {"common.outdated_button"}
    assert tg.screen(admin).has("admin.menu_title")  # and the menu, as for any outdated button
    assert await _user_ids(db) == {TARGET}


@pytest.mark.parametrize("action", ["admin_add_week", "admin_add_month", "admin_add_vip", "admin_sub_month",
                                    "admin_block", "admin_unban", "admin_user"])
@pytest.mark.parametrize("user_id", [1, 2**31, 2**63 - 1])
async def test_card_buttons_on_an_id_without_a_row_say_not_found_and_write_nothing(
    tg: Telegram, db, errors: ErrorRecords, admin: TgUser, action: str, user_id: int
) -> None:
    assert await _press(tg, errors, admin, f"{action}:{user_id}") == {"admin.user_not_found"}
    assert await _user_ids(db) == set()
    assert tg.api.messages(user_id) == []  # no "access granted" to nobody


@pytest.mark.parametrize(
    ("command", "usage"),
    [("/ban", "admin.usage_ban"), ("/unban", "admin.usage_unban"), ("/adduser", "admin.usage_adduser")],
)
@pytest.mark.parametrize("value", [v for v in BOUNDARIES if v not in bounds.USER_ID])
async def test_out_of_range_ids_in_commands_are_a_usage_error(
    tg: Telegram, db, errors: ErrorRecords, admin: TgUser, command: str, usage: str, value: int
) -> None:
    await tg.send(admin, f"{command} {value}")
    assert not errors.records
    assert tg.screen(admin).has(usage)
    assert await _user_ids(db) == set()


@pytest.mark.parametrize("days", [v for v in BOUNDARIES if v not in bounds.GRANT_DAYS])
async def test_out_of_range_days_are_a_usage_error(tg: Telegram, db, errors: ErrorRecords, admin: TgUser,
                                                   days: int) -> None:
    await tg.send(admin, f"/adduser {TARGET} {days}")
    assert not errors.records
    assert tg.screen(admin).has("admin.usage_adduser")
    assert await _user_ids(db) == set()


async def test_ban_of_the_largest_user_id_works(tg: Telegram, db, errors: ErrorRecords, admin: TgUser) -> None:
    """The top of the range is a valid id: /ban keeps its durable ban of someone who never wrote."""
    await tg.send(admin, f"/ban {2**63 - 1}")
    assert not errors.records
    assert tg.screen(admin).has("admin.banned")
    row = await users.get(db, 2**63 - 1)
    assert row is not None and row.status == "banned"


@pytest.mark.parametrize("sender", [0, -5, 2**63, 10**20])
async def test_updates_from_ids_no_user_has_write_nothing(tg: Telegram, db, errors: ErrorRecords,
                                                          sender: int) -> None:
    await tg.send(TgUser(sender), "hello")
    await tg.press(TgUser(sender), "back_to_menu")
    assert not errors.records
    assert await _user_ids(db) == set()


# ---- legacy rows under ids no user has, and the announcement count ------------------------------------


async def _legacy_rows(db) -> None:
    """What the admin buttons could write before they were bounded: active rows under ids <= 0."""
    await db.execute(
        "INSERT INTO bot_users (user_id, status, expires_at) VALUES (-5, 'active', now() + interval '10 years'),"
        " (0, 'active', NULL), (-1, 'pending', now())"
    )


async def test_rows_under_ids_no_user_has_stay_out_of_the_panel(tg: Telegram, db, errors: ErrorRecords,
                                                                admin: TgUser) -> None:
    await _legacy_rows(db)
    await users.set_access(db, TARGET, status="active", expires_at=None)
    counts = await users.counts(db)
    assert (counts.total, counts.active, counts.pending) == (1, 1, 0)
    for view in ("all", "confirmed", "requested"):
        await _press(tg, errors, admin, f"admin_panel:{view}:0")
        buttons = [c for c in tg.screen(admin).callbacks if c.startswith("admin_user:")]
        assert buttons == ([f"admin_user:{TARGET}"] if view != "requested" else [])


async def test_announcement_total_is_the_users_it_visits(tg: Telegram, db, errors: ErrorRecords, settings,
                                                         admin: TgUser) -> None:
    await _legacy_rows(db)
    for i in range(3):
        await users.set_access(db, 2000 + i, status="active", expires_at=None)
    await _press(tg, errors, admin, "admin_add_vip:-5")  # refused: no second way in
    await tg.press(admin, "admin_announce")
    await tg.send(admin, "News")
    assert "3 active users" in tg.screen(admin).text
    await tg.press(admin, "admin_announce_confirm")
    ann = await announcements.get(db, 1)
    assert ann is not None and ann.total == 3
    result = await asyncio.to_thread(run_job, settings, run_announcement, 1)
    done = await announcements.get(db, 1)
    assert done is not None
    assert result == {"delivered": 3, "failed": 0, "blocked": 0}
    assert done.total == done.delivered + done.failed == 3
    assert not errors.records


async def test_announcement_total_follows_users_who_run_out_during_the_run(db, botapi, settings) -> None:
    """The first count is taken at the start; the stored total ends as the users actually visited."""
    for i in range(3):
        await users.set_access(db, 2000 + i, status="active", expires_at=None)
    source = botapi.add_message(ADMIN_ID, text="News")
    ann = await announcements.create(db, admin_id=ADMIN_ID, from_chat_id=ADMIN_ID, source_message_id=source,
                                     total=3)
    await announcements.start(db, ann.id, 3)
    await users.set_access(db, 2002, status="active", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    async with BotApiClient(BOT_TOKEN, settings.bot_api_base) as client:
        done: Any = await deliver(db, client, settings, ann.id)
    assert (done.delivered, done.failed, done.total) == (2, 0, 2)
