"""Interval (presets, custom), start with each missing prerequisite, stop (also when expired), cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db import configs
from handlers.states import BroadcastStates
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, fsm_state, log_in, make_groups


@pytest.fixture
async def ready(tg: Telegram, net, db, user: TgUser) -> TgUser:
    """Logged in, two groups in the list, no message yet."""
    await allow(db, user)
    await log_in(tg, net, user, groups=make_groups(2))
    await tg.press(user, "add_all_groups:0")
    return user


async def _write(tg: Telegram, user: TgUser, text: str = "Our ad") -> None:
    await tg.press(user, "send_message")
    await tg.send(user, text)


@pytest.mark.parametrize("minutes", [3, 5, 10, 30])
async def test_preset_interval_starts_the_broadcast(app, tg: Telegram, db, ready: TgUser, minutes: int) -> None:
    await _write(tg, ready)
    before = datetime.now(UTC)
    await tg.press(ready, f"set_interval:{minutes}")
    config = await configs.get(db, ready.id)
    assert config is not None and config.active and config.interval_minutes == minutes
    assert config.next_run_at is not None and before - timedelta(seconds=5) <= config.next_run_at
    assert config.next_run_at <= datetime.now(UTC) + timedelta(seconds=5)  # the first cycle is due now
    screen = tg.screen(ready)
    assert screen.has("broadcast.started", "menu.status_on") and f"every {minutes} min" in screen.text
    assert screen.callbacks[0] == "stop_broadcast"
    assert await fsm_state(app, ready) is None


@pytest.mark.parametrize("forged", [1, 4, 7, 60, 0, -5])
async def test_non_preset_interval_is_refused(tg: Telegram, db, ready: TgUser, forged: int) -> None:
    await _write(tg, ready)
    await tg.press(ready, f"set_interval:{forged}")
    assert "broadcast.bad_preset" in tg.toast_keys()
    config = await configs.get(db, ready.id)
    assert config is not None and not config.active and config.interval_minutes is None


async def test_interval_needs_a_message(tg: Telegram, db, ready: TgUser) -> None:
    await tg.press(ready, "set_interval:5")
    assert tg.screen(ready).has("broadcast.need_message")
    config = await configs.get(db, ready.id)
    assert config is None or not config.active


async def test_interval_without_groups_is_kept_but_does_not_start(tg: Telegram, db, ready: TgUser) -> None:
    await tg.press(ready, "deselect_all_groups")
    await _write(tg, ready)
    await tg.press(ready, "set_interval:10")
    assert tg.screen(ready).has("broadcast.need_groups")
    config = await configs.get(db, ready.id)
    assert config is not None and not config.active and config.interval_minutes == 10


async def test_custom_interval(app, tg: Telegram, db, settings, ready: TgUser) -> None:
    await _write(tg, ready)
    await tg.press(ready, "set_interval_custom")
    assert await fsm_state(app, ready) == BroadcastStates.WAITING_INTERVAL.state
    screen = tg.screen(ready)
    assert screen.has("broadcast.ask_interval") and screen.callbacks == ["cancel_broadcast"]
    assert str(settings.min_interval_minutes) in screen.text and str(settings.max_interval_minutes) in screen.text
    for bad in ("2", "10081", "abc", "5.5", "-4", "٥"):
        await tg.send(ready, bad)
        assert tg.screen(ready).has("broadcast.bad_interval"), bad
        assert await fsm_state(app, ready) == BroadcastStates.WAITING_INTERVAL.state
    await tg.send(ready, " 45 ")
    assert await fsm_state(app, ready) is None
    config = await configs.get(db, ready.id)
    assert config is not None and config.active and config.interval_minutes == 45
    assert tg.screen(ready).has("broadcast.started")


async def test_start_names_each_missing_step(tg: Telegram, net, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "start_broadcast")
    assert tg.screen(user).has("menu.need_login")

    await log_in(tg, net, user, groups=make_groups(1))
    await tg.press(user, "start_broadcast")
    assert tg.screen(user).has("broadcast.need_message")

    await _write(tg, user)
    await tg.press(user, "start_broadcast")
    assert tg.screen(user).has("broadcast.need_interval")

    await tg.press(user, "set_interval:5")  # no groups yet: the interval is kept
    assert tg.screen(user).has("broadcast.need_groups")
    await tg.press(user, "start_broadcast")
    assert tg.screen(user).has("broadcast.need_groups")

    await tg.press(user, "add_all_groups:0")
    await tg.press(user, "start_broadcast")
    assert tg.screen(user).has("broadcast.started")
    config = await configs.get(db, user.id)
    assert config is not None and config.active and config.interval_minutes == 5


async def test_start_is_refused_without_access(tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready)
    await tg.press(ready, "set_interval_custom")
    await tg.send(ready, "20")
    await tg.press(ready, "stop_broadcast")
    await allow(db, ready, expires_at=datetime.now(UTC) - timedelta(days=1))
    await tg.press(ready, "start_broadcast")
    config = await configs.get(db, ready.id)
    assert config is not None and not config.active
    assert "broadcast.started" not in tg.screen(ready).keys


async def _running_cycle(db, owner: int, message_id: int, chat_ids: list[int]) -> int:
    now = datetime.now(UTC)
    cur = await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, total)
        VALUES (%(o)s, 1, %(m)s, 5, %(t)s, %(t)s, %(n)s) RETURNING id
        """,
        {"o": owner, "m": message_id, "t": now, "n": len(chat_ids)},
    )
    cycle_id = (await cur.fetchone())[0]
    for i, chat_id in enumerate(chat_ids):
        await db.execute(
            """
            INSERT INTO deliveries (cycle_id, owner_id, chat_id, position, next_attempt_at, random_id)
            VALUES (%(c)s, %(o)s, %(chat)s, %(i)s, %(t)s, %(r)s)
            """,
            {"c": cycle_id, "o": owner, "chat": chat_id, "i": i, "t": now, "r": 1000 + i},
        )
    return cycle_id


@pytest.mark.parametrize("expired", [False, True])
async def test_stop_cancels_pending_sends(tg: Telegram, db, ready: TgUser, expired: bool) -> None:
    await _write(tg, ready)
    await tg.press(ready, "set_interval:3")
    config = await configs.get(db, ready.id)
    assert config is not None and config.active and config.message_id is not None
    cycle_id = await _running_cycle(db, ready.id, config.message_id, [-1, -2])
    if expired:  # a user whose access ran out can still stop
        await allow(db, ready, expires_at=datetime.now(UTC) - timedelta(hours=1))
    await tg.press(ready, "stop_broadcast")
    config = await configs.get(db, ready.id)
    assert config is not None and not config.active
    cur = await db.execute("SELECT DISTINCT status FROM deliveries WHERE cycle_id = %(c)s", {"c": cycle_id})
    assert [r[0] for r in await cur.fetchall()] == ["cancelled"]
    assert "broadcast.stopped" in tg.toast_keys()
    if not expired:
        screen = tg.screen(ready)
        assert screen.has("broadcast.stopped", "menu.status_off") and screen.callbacks[0] == "start_broadcast"


async def test_cancel_keeps_the_saved_message(app, tg: Telegram, db, ready: TgUser) -> None:
    await _write(tg, ready, "kept")
    await tg.press(ready, "send_message")
    await tg.press(ready, "cancel_broadcast")
    assert await fsm_state(app, ready) is None
    screen = tg.screen(ready)
    assert screen.has("common.cancelled", "menu.status_message_set")
    config = await configs.get(db, ready.id)
    assert config is not None and config.message_id is not None
