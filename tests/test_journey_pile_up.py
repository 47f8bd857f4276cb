"""The "No pile-up" screen (docs/bot.md, "No pile-up"): it shows the broadcast's rule, stores the one
pressed, refuses a forged one, and needs a login; the status tells skipped groups apart from failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in

RULES = ["pile_up:off", "pile_up:skip", "pile_up:replace", "back_to_menu"]


async def pile_up_of(db, user: TgUser) -> str | None:
    cur = await db.execute("SELECT pile_up FROM configs WHERE owner_id = %(o)s", {"o": user.id})
    row = await cur.fetchone()
    return row[0] if row else None


async def test_the_screen_shows_and_stores_the_rule(tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user)
    await tg.press(user, "pile_up_menu")
    screen = tg.screen(user)
    assert screen.has("pile_up.title") and screen.callbacks == RULES
    await tg.press(user, "pile_up:skip")
    assert await pile_up_of(db, user) == "skip"
    assert "pile_up.saved" in tg.toast_keys()
    assert tg.screen(user).callbacks == RULES
    await tg.press(user, "pile_up:replace")
    assert await pile_up_of(db, user) == "replace"


async def test_a_forged_rule_is_refused_and_nothing_stored(tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user)
    await tg.press(user, "pile_up:skip")
    await tg.press(user, "pile_up:always")
    assert "pile_up.unknown" in tg.toast_keys()
    assert await pile_up_of(db, user) == "skip"


async def test_the_screen_needs_a_login(tg: Telegram, db, user: TgUser) -> None:
    await allow(db, user)
    await tg.press(user, "pile_up_menu")
    assert "menu.need_login" in tg.toast_keys()
    await tg.press(user, "pile_up:skip")
    assert await pile_up_of(db, user) is None


async def test_the_status_counts_skipped_groups_apart_from_failures(tg: Telegram, db, net, user: TgUser) -> None:
    await allow(db, user)
    await log_in(tg, net, user)
    cur = await db.execute("INSERT INTO messages (owner_id, kind, text, content_hash) VALUES (%(o)s, 'text', 'x', 'h') "
                           "RETURNING id", {"o": user.id})
    message_id = (await cur.fetchone())[0]
    finished = datetime.now(UTC) - timedelta(minutes=1)
    await db.execute(
        "INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, finished_at, "
        "status, outcome, total, sent, skipped) VALUES (%(o)s, 1, %(m)s, 5, %(t)s, %(t)s, %(t)s, 'done', 'sent', "
        "3, 1, 2)", {"o": user.id, "m": message_id, "t": finished})
    await tg.press(user, "restart_bot")
    screen = tg.screen(user)
    assert screen.has("menu.status_last_cycle", "menu.status_skipped_on_top")
    assert "menu.failed_group" not in screen.keys
