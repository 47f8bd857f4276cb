"""When things happen: the menu and the Start answer say when the next round goes out, a message or
interval change says from which round it applies, and the tick then does what was said."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.schedule import cycle_jitter_ms
from db import configs
from jobs.tick import tick
from services.rounds import clock
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in, make_groups
from tests.runtime_helpers import cycle_row, utcnow


@pytest.fixture
async def running(tg: Telegram, net, db, user: TgUser) -> TgUser:
    """Logged in, two groups, a message, broadcasting every 10 minutes."""
    await allow(db, user)
    await log_in(tg, net, user, groups=make_groups(2))
    await tg.press(user, "add_all_groups:0")
    await _write(tg, user, "First ad")
    await tg.press(user, "set_interval:10")
    return user


async def _write(tg: Telegram, user: TgUser, text: str) -> None:
    await tg.press(user, "send_message")
    await tg.send(user, text)


async def _next_run_in(db, user: TgUser, delta: timedelta) -> None:
    await db.execute("UPDATE configs SET next_run_at = %(t)s WHERE owner_id = %(o)s",
                     {"t": utcnow() + delta, "o": user.id})


async def test_right_after_start_the_next_round_is_due(tg: Telegram, running: TgUser) -> None:
    screen = tg.screen(running)
    assert screen.has("broadcast.started", "menu.status_on", "menu.status_next_due")


async def test_the_menu_names_the_time_and_the_wait(tg: Telegram, db, running: TgUser) -> None:
    await _next_run_in(db, running, timedelta(minutes=3))
    config = await configs.get(db, running.id)
    assert config is not None and config.next_run_at is not None
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_next_round") and "menu.status_next_due" not in screen.keys
    assert clock(config.next_run_at, utcnow()) in screen.text and "in 3 min" in screen.text


async def test_a_stopped_broadcast_says_nothing_about_rounds(tg: Telegram, running: TgUser) -> None:
    await tg.press(running, "stop_broadcast")
    keys = tg.screen(running).keys
    assert "menu.status_off" in keys
    assert not keys & {"menu.status_next_round", "menu.status_next_due", "menu.status_round_now"}


@pytest.mark.parametrize("settings_overrides", [{"jitter_max_ms": 0}, {"jitter_max_ms": 15000}])
async def test_a_restart_within_the_interval_says_when_and_the_tick_keeps_the_promise(
    tg: Telegram, db, pool, settings, running: TgUser
) -> None:
    first = await tick(pool, settings, utcnow())
    [first_cycle] = first.cycle_ids
    started_at = (await cycle_row(db, first_cycle))["scheduled_at"]
    await tg.press(running, "stop_broadcast")
    await tg.press(running, "start_broadcast")
    screen = tg.screen(running)
    assert screen.has("broadcast.started_wait", "menu.status_next_round")
    config = await configs.get(db, running.id)
    assert config is not None
    promised = started_at + timedelta(minutes=10) \
        + timedelta(milliseconds=cycle_jitter_ms(running.id, config.cycle + 1, settings.jitter_max_ms))
    assert clock(promised, utcnow()) in screen.text
    # Not a minute before: the tick leaves it alone now, and creates it for exactly that time later.
    assert (await tick(pool, settings, utcnow())).cycle_ids == []
    later = await tick(pool, settings, promised - timedelta(seconds=30))
    [second_cycle] = later.cycle_ids
    assert (await cycle_row(db, second_cycle))["run_at"] == promised


async def test_a_message_saved_after_the_round_was_prepared_says_it_waits(tg: Telegram, db, pool, settings,
                                                                          running: TgUser) -> None:
    await _next_run_in(db, running, timedelta(seconds=40))
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids  # prepared ahead, within the due window
    run_at = (await cycle_row(db, cycle_id))["run_at"]
    await tg.press(running, "restart_bot")
    assert tg.screen(running).has("menu.status_next_round") and clock(run_at, utcnow()) in tg.screen(running).text

    await _write(tg, running, "Second ad")
    screen = tg.screen(running)
    assert screen.has("message.saved_running", "message.applies_after_prepared")
    assert clock(run_at, utcnow()) in screen.text and clock(run_at + timedelta(minutes=10), utcnow()) in screen.text
    assert screen.callbacks[:4] == ["set_interval:3", "set_interval:5", "set_interval:10", "set_interval:30"]

    # The round starts: the menu shows it going out, then the one after it; a new message waits for that.
    await db.execute("UPDATE cycles SET started_at = now() WHERE id = %(id)s", {"id": cycle_id})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_round_now", "menu.status_round_then") and "0 of 2" in screen.text
    await _write(tg, running, "Third ad")
    assert tg.screen(running).has("message.saved_running", "message.applies_after_sending")


async def test_with_no_round_prepared_the_message_goes_with_the_next(tg: Telegram, db, running: TgUser) -> None:
    await _next_run_in(db, running, timedelta(minutes=5))
    await _write(tg, running, "Second ad")
    screen = tg.screen(running)
    assert screen.has("message.saved_running", "message.applies_next") and "in 5 min" in screen.text
    # Using an older message again says the same.
    cur = await db.execute("SELECT min(id) FROM messages WHERE owner_id = %(o)s", {"o": running.id})
    row = await cur.fetchone()
    assert row is not None
    await tg.press(running, f"history_use:{row[0]}")
    assert tg.screen(running).has("history.used_running", "message.applies_next")


async def test_a_message_saved_while_stopped_just_asks_for_the_interval(tg: Telegram, running: TgUser) -> None:
    await tg.press(running, "stop_broadcast")
    await _write(tg, running, "Second ad")
    screen = tg.screen(running)
    assert screen.has("message.saved") and not screen.keys & {"message.saved_running", "message.applies_next",
                                                               "message.applies_due"}


async def test_an_interval_change_while_running_says_so_and_keeps_the_clock(tg: Telegram, db,
                                                                            running: TgUser) -> None:
    before = await configs.get(db, running.id)
    await tg.press(running, "set_interval:30")
    assert tg.screen(running).has("broadcast.interval_changed")
    after = await configs.get(db, running.id)
    assert after is not None and before is not None
    assert (after.interval_minutes, after.next_run_at) == (30, before.next_run_at)


async def test_a_flood_pause_and_an_empty_list_are_shown(tg: Telegram, db, running: TgUser) -> None:
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE owner_id = %(o)s",
                     {"t": utcnow() + timedelta(minutes=7), "o": running.id})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_paused", "menu.status_next_round") and "in 7 min" in screen.text
    await tg.press(running, "deselect_all_groups")
    await tg.press(running, "back_to_menu")
    screen = tg.screen(running)
    assert screen.has("menu.status_no_groups") and "menu.status_next_round" not in screen.keys


async def test_with_several_accounts_paused_is_shown_only_when_every_one_is(tg: Telegram, db, running: TgUser) -> None:
    """The tick holds a round back only when every active account is paused; while another may send,
    "paused" would not be true."""
    await db.execute(
        "INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, status) "
        "SELECT owner_id, tg_user_id + 1, phone || '9', session_enc, 'active' FROM accounts WHERE owner_id = %(o)s",
        {"o": running.id})
    first, second = [r[0] for r in await (await db.execute(
        "SELECT id FROM accounts WHERE owner_id = %(o)s ORDER BY id", {"o": running.id})).fetchall()]
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE id = %(id)s",
                     {"t": utcnow() + timedelta(minutes=7), "id": first})
    await tg.press(running, "restart_bot")
    assert "menu.status_paused" not in tg.screen(running).keys
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE id = %(id)s",
                     {"t": utcnow() + timedelta(minutes=4), "id": second})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_paused") and "in 4 min" in screen.text  # the earliest end
    await db.execute("UPDATE accounts SET status = 'revoked' WHERE id = %(id)s", {"id": second})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)  # the only active one is paused
    assert screen.has("menu.status_paused") and "in 7 min" in screen.text
