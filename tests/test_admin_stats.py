"""admin_stats: figures from cycles, configs, accounts and the queues, plus the chart photo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis import Redis as SyncRedis
from rq import Queue

from db import accounts, configs, ops, users
from tests.harness import Telegram, TgUser, message_keys


async def _message(db, owner: int) -> int:
    cur = await db.execute(
        "INSERT INTO messages (owner_id, kind, text, content_hash) VALUES (%(o)s, 'text', 'hi', 'h') RETURNING id",
        {"o": owner},
    )
    return (await cur.fetchone())[0]


async def _cycle(db, owner: int, seq: int, message_id: int, finished_ago: timedelta, *, sent: int, failed: int,
                 cancelled: int = 0, reasons: str = "{}", lag_ms: int = 100) -> None:
    finished = datetime.now(UTC) - finished_ago
    await db.execute(
        """
        INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, started_at,
                            finished_at, status, outcome, total, sent, failed, cancelled, reasons, lag_ms)
        VALUES (%(o)s, %(seq)s, %(m)s, 5, %(f)s, %(f)s, %(f)s, %(f)s, 'done', 'partial', %(t)s, %(s)s, %(fa)s,
                %(c)s, %(r)s::jsonb, %(lag)s)
        """,
        {"o": owner, "seq": seq, "m": message_id, "f": finished, "t": sent + failed + cancelled, "s": sent,
         "fa": failed, "c": cancelled, "r": reasons, "lag": lag_ms},
    )


async def _seed(db) -> None:
    await users.set_access(db, 1, status="active", expires_at=None)
    await users.set_access(db, 2, status="pending", expires_at=datetime.now(UTC))
    await users.set_access(db, 3, status="banned", expires_at=None)
    m = await _message(db, 1)
    await configs.set_message(db, 1, m)
    await configs.activate(db, 1, 5, datetime.now(UTC))
    await _cycle(db, 1, 1, m, timedelta(minutes=30), sent=5, failed=2, reasons='{"forbidden": 2}', lag_ms=100)
    await _cycle(db, 1, 2, m, timedelta(hours=3), sent=4, failed=1, cancelled=1, reasons='{"unreachable": 1}',
                 lag_ms=2000)
    await _cycle(db, 1, 3, m, timedelta(hours=30), sent=50, failed=50)  # older than 24 h: not counted
    await accounts.store(db, 1, tg_user_id=11, phone="+998900000001", session_enc=b"x")
    await accounts.pause(db, 1, datetime.now(UTC) + timedelta(minutes=10), "flood")


async def test_the_figures_the_screen_reads(db) -> None:
    await _seed(db)
    sends = await ops.delivery_totals(db)
    assert (sends.sent, sends.failed, sends.cancelled) == (9, 3, 1)
    assert await ops.failures_by_reason(db) == [("forbidden", 2), ("unreachable", 1)]
    assert (await ops.accounts_by_state(db))["flood_paused"] == 1
    assert await ops.active_configs(db) == 1
    lag = (await ops.lag_percentiles(db)).p95_ms
    assert lag is not None and 1900 <= lag <= 2000
    hourly = [h.sent for h in await ops.deliveries_per_hour(db)]
    assert len(hourly) == 24 and sum(hourly) == 9 and hourly[-1] + hourly[-2] >= 5
    assert hourly[-4] + hourly[-3] + hourly[-5] >= 4


async def test_admin_stats_screen_and_chart(tg: Telegram, db, settings, admin: TgUser) -> None:
    await _seed(db)
    Queue(f"{settings.queue_prefix}-broadcast", connection=SyncRedis.from_url(settings.redis_url)).enqueue(
        "jobs.send_batch.send_batch", 1, 0)
    await tg.press(admin, "admin_stats")
    photo = tg.api.last("sendPhoto")
    assert photo is not None and int(photo.params["chat_id"]) == admin.id
    screen = tg.screen(admin)
    assert screen.has("admin.stats_title", "admin.stats_users", "admin.stats_broadcasts", "admin.stats_deliveries",
                      "admin.stats_reasons", "admin.stats_flood", "admin.stats_queue", "admin.stats_lag")
    assert "sent 9, failed 3, cancelled 1" in screen.text
    assert "broadcast 1, announcements 0" in screen.text
    assert "Accounts in flood pause: 1" in screen.text
    assert screen.callbacks == ["admin_stats", "back_to_menu"]


async def test_stats_with_no_data(tg: Telegram, db, admin: TgUser) -> None:
    await tg.press(admin, "admin_stats")
    assert tg.api.last("sendPhoto") is not None
    assert tg.screen(admin).has("admin.stats_lag_none")


def test_the_charts_axes_name_hours_and_dates() -> None:
    from handlers.admin.stats import day_axis, hour_axis

    now = datetime(2031, 3, 4, 14, 25, tzinfo=UTC)
    hours, dates = hour_axis(now, 24)
    # The buckets run from 15:00 yesterday to the current hour: every third hour named, the date
    # under the first bar and under midnight.
    assert hours[:4] == ["15h", "", "", "18h"] and hours[-3] == "12h" and hours[-1] == ""
    assert [(i, d) for i, d in enumerate(dates) if d] == [(0, "03-03"), (9, "03-04")]
    days = day_axis(now, 30)
    assert days[-1] == "03-04" and days[-6] == "02-27" and days[4] == "02-07" and days[0] == ""
    assert sum(1 for d in days if d) == 6


async def test_the_chart_photo_has_labelled_axes(tg: Telegram, db, admin: TgUser) -> None:
    from core.chart import TEXT
    from tests.conftest import BOT_TOKEN
    from tests.test_chart import decode

    await _seed(db)
    await tg.press(admin, "admin_stats")
    photo = next(m for m in tg.api.messages(admin.id) if "photo" in m)
    status, answer = tg.api.handle(BOT_TOKEN, "getFile", {"file_id": photo["photo"][-1]["file_id"]}, {})
    assert status == 200
    data = tg.api.file_by_path(answer["result"]["file_path"])
    assert data is not None
    width, height, rows = decode(data)
    label_rows = rows[height - 38:]  # below the baseline: hours, dates and UTC
    assert any(TEXT in {tuple(r[x * 3:x * 3 + 3]) for x in range(width)} for r in label_rows)
    assert "admin.stats_chart" in {k for c in tg.api.calls_of("sendPhoto") for k in message_keys(c.params["caption"])}
