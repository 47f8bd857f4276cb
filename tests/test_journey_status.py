"""True status: a stopped round shows as stopped (menu and admin card), an ended session says so with
Log in, and a flood pause that is over leaves no "paused until" badge on the sandbox page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.send_batch import run_batch
from jobs.tick import tick
from sandbox.views import network_view
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow, log_in, make_groups
from tests.runtime_helpers import config_row, cycle_row, deliveries_of, utcnow


@pytest.fixture
async def running(tg: Telegram, net, db, user: TgUser) -> TgUser:
    await allow(db, user)
    await log_in(tg, net, user, groups=make_groups(2))
    await tg.press(user, "add_all_groups:0")
    await tg.press(user, "send_message")
    await tg.send(user, "Our ad")
    await tg.press(user, "set_interval:10")
    return user


async def test_a_round_stopped_before_sending_is_told_as_the_next_round_cancelled(tg: Telegram, db, pool, settings,
                                                               running: TgUser, admin: TgUser) -> None:
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids
    await tg.press(running, "stop_broadcast")
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["status"], cycle["sent"], cycle["failed"], cycle["cancelled"]) == ("cancelled", 0, 0, 2)
    await tg.press(running, "restart_bot")
    keys = tg.screen(running).keys
    assert {"menu.status_no_cycles", "menu.status_next_cancelled"} <= keys and "menu.status_last_cycle" not in keys
    await tg.press(admin, f"admin_user:{running.id}")
    keys = tg.screen(admin).keys
    assert {"admin.card_no_cycles", "admin.card_next_cancelled"} <= keys and "admin.card_last_cycle" not in keys


async def test_stop_reports_the_round_that_ran_and_apart_that_the_next_was_cancelled(
    tg: Telegram, db, pool, settings, running: TgUser, admin: TgUser
) -> None:
    now = utcnow()
    [ran] = (await tick(pool, settings, now)).cycle_ids
    await db.execute("UPDATE deliveries SET status = 'sent', sent_at = now() WHERE cycle_id = %(c)s", {"c": ran})
    await db.execute("UPDATE cycles SET status = 'done', outcome = 'sent', sent = 2, finished_at = now() "
                     "WHERE id = %(c)s", {"c": ran})
    [queued] = (await tick(pool, settings, now + timedelta(minutes=11))).cycle_ids
    await tg.press(running, "stop_broadcast")
    assert (await cycle_row(db, queued))["status"] == "cancelled"
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_last_cycle", "menu.status_next_cancelled")
    assert "menu.status_last_stopped_partly" not in screen.keys and "sent 2, failed 0" in screen.text
    await tg.press(admin, f"admin_user:{running.id}")
    assert tg.screen(admin).has("admin.card_last_cycle", "admin.card_next_cancelled")


async def test_a_round_stopped_part_way_says_what_was_and_was_not_sent(tg: Telegram, db, pool, settings,
                                                                       running: TgUser) -> None:
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids
    first = await db.execute("SELECT min(id) FROM deliveries WHERE cycle_id = %(c)s", {"c": cycle_id})
    row = await first.fetchone()
    assert row is not None
    await db.execute("UPDATE deliveries SET status = 'sent', sent_at = now() WHERE id = %(d)s", {"d": row[0]})
    await tg.press(running, "stop_broadcast")
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_last_stopped_partly") and "menu.status_last_cycle" not in screen.keys
    assert "sending 1, failed 0; 1 not sent" in screen.text


async def test_a_finished_round_still_shows_its_counts(tg: Telegram, db, pool, settings, running: TgUser) -> None:
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids
    await db.execute("UPDATE deliveries SET status = 'sent', sent_at = now() WHERE cycle_id = %(c)s", {"c": cycle_id})
    await db.execute("UPDATE cycles SET status = 'done', outcome = 'sent', sent = 2, finished_at = now() "
                     "WHERE id = %(c)s", {"c": cycle_id})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_last_cycle") and "sent 2, failed 0" in screen.text


async def test_an_ended_session_says_so_and_offers_log_in(tg: Telegram, db, running: TgUser) -> None:
    await db.execute("UPDATE accounts SET status = 'revoked' WHERE owner_id = %(o)s", {"o": running.id})
    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.session_ended") and "menu.not_connected" not in screen.keys
    assert screen.callbacks == ["login", "full_manual"]


async def test_a_pause_that_is_over_leaves_no_badge(tg: Telegram, db, net, pool, redis, settings,
                                                    running: TgUser) -> None:
    async def badge() -> tuple[str | None, str | None]:
        view = await network_view(net, pool, redis, settings.redis_prefix)
        [account] = [a for a in view["accounts"] if a["owner_id"] == running.id]
        return account["flood_until"], account["pause_reason"]

    await db.execute("UPDATE accounts SET flood_until = %(t)s, pause_reason = 'flood' WHERE owner_id = %(o)s",
                     {"t": utcnow() + timedelta(minutes=5), "o": running.id})
    until, reason = await badge()
    assert until is not None and reason == "flood"
    await db.execute("UPDATE accounts SET flood_until = %(t)s WHERE owner_id = %(o)s",
                     {"t": utcnow() - timedelta(seconds=1), "o": running.id})
    assert await badge() == (None, None)


async def test_each_failed_group_says_why_in_the_menu_and_the_history(tg: Telegram, db, net, pool, settings, ctx,
                                                                      running: TgUser) -> None:
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids
    slow, forbidden = await deliveries_of(db, cycle_id)
    # The second group failed for good twice before: this third failing round takes it off the list.
    await db.execute("UPDATE groups SET fail_streak = 2 WHERE owner_id = %(o)s AND chat_id = %(c)s",
                     {"o": running.id, "c": forbidden["chat_id"]})
    cur = await db.execute("SELECT tg_user_id FROM accounts WHERE owner_id = %(o)s", {"o": running.id})
    [tg_user_id] = await cur.fetchone()
    await net.fail_next(tg_user_id, "SLOWMODE_WAIT_900", "CHAT_WRITE_FORBIDDEN")  # 15 min > the 10 min interval
    assert (await run_batch(ctx, cycle_id)).outcome == "finished"
    failures = {f["chat_id"]: f for f in (await cycle_row(db, cycle_id))["failures"]}
    assert (failures[slow["chat_id"]]["reason"], failures[slow["chat_id"]]["removed"]) == ("slowmode", False)
    assert (failures[forbidden["chat_id"]]["reason"], failures[forbidden["chat_id"]]["removed"]) == ("forbidden", True)
    until = datetime.fromisoformat(failures[slow["chat_id"]]["until"])

    await tg.press(running, "restart_bot")
    screen = tg.screen(running)
    assert screen.has("menu.status_last_cycle", "menu.failed_group", "menu.why_slowmode_until", "menu.why_removed",
                      "menu.why_forbidden")
    assert f"{until.astimezone(UTC):%H:%M} UTC" in screen.text  # when the slow mode ends, not "15 min"

    config = await config_row(db, running.id)
    await tg.press(running, f"history_view:{config['message_id']}")
    screen = tg.screen(running)
    assert screen.has("history.view", "history.last_failures", "menu.why_slowmode_until", "menu.why_removed")


async def test_posts_made_while_the_page_was_closed_still_show_their_cycle(net, db, pool, redis, settings, ctx,
                                                                            running: TgUser) -> None:
    await net.seed(make_groups(2))  # the page's groups panel lists the sandbox's seeded groups
    [cycle_id] = (await tick(pool, settings, utcnow())).cycle_ids
    assert (await run_batch(ctx, cycle_id)).outcome == "finished"
    # Nobody looked at the page; the next round's creation prunes this round's delivery rows.
    await db.execute("DELETE FROM deliveries WHERE cycle_id = %(c)s", {"c": cycle_id})
    view = await network_view(net, pool, redis, settings.redis_prefix)
    posts = [p for g in view["groups"] for p in g["posts"]]
    assert len(posts) == 2
    assert [(p["cycle"] or {}).get("cycle_id") for p in posts] == [cycle_id, cycle_id]
