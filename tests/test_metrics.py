"""GET /metrics: every metric moves when its event happens (scraped before and after), gauges follow
the rows and queues, the token is enforced, and the exposition is well-formed and escaped."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message
from redis import Redis as SyncRedis
from rq import Queue

from api.state import AppState
from services.gauges import last_tick_key, queue_names
from services.metrics import METRICS, Family, Metrics, MetricSpec, Sample, bucket_for, render
from tests.harness import WEBHOOK_SECRET, Telegram, TgUser

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """A strict reader of the text format: any line that is not a comment or a sample fails."""
    out: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = _LINE.match(line)
        assert m, f"malformed line: {line!r}"
        name, raw_labels, value = m.groups()
        labels = frozenset(
            (k, v.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\"))
            for k, v in _LABEL.findall(raw_labels or "")
        )
        out[(name, labels)] = float(value)
    return out


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Series:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


def _update(update_id: int, user: TgUser, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1, "date": 0, "text": text,
            "chat": {"id": user.id, "type": "private"}, "from": user.as_dict(),
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


@pytest.fixture
def boom(app) -> None:
    router = Router(name="boom")

    @router.message(Command("boom"))
    async def _boom(message: Message) -> None:
        raise RuntimeError("handler exploded")

    state: AppState = app.state.tgcast
    state.dispatcher.include_router(router)
    # Ahead of the feature routers, whose catch-all fallback would otherwise take the command.
    state.dispatcher.sub_routers.insert(0, state.dispatcher.sub_routers.pop())


@pytest.fixture
def metrics(redis, settings) -> Metrics:
    return Metrics(redis, settings.redis_prefix)


# ---- the webhook ---------------------------------------------------------------------------------


async def test_handled_update_counts_and_times(client, tg: Telegram, user: TgUser) -> None:
    before = await scrape(client)
    await tg.send(user, "/start")
    after = await scrape(client)
    assert value(after, "tgcast_webhook_updates_total", type="message") == \
        value(before, "tgcast_webhook_updates_total", type="message") + 1
    assert value(after, "tgcast_webhook_latency_seconds_count") == \
        value(before, "tgcast_webhook_latency_seconds_count") + 1
    assert value(after, "tgcast_webhook_latency_seconds_bucket", le="+Inf") == 1
    assert value(after, "tgcast_webhook_latency_seconds_sum") > 0


async def test_duplicate_update_counts_as_duplicate_not_handled(client, tg: Telegram, user: TgUser) -> None:
    await tg.post_update(_update(4242, user, "/start"))
    before = await scrape(client)
    await tg.post_update(_update(4242, user, "/start"))
    after = await scrape(client)
    assert value(after, "tgcast_webhook_duplicates_total") == value(before, "tgcast_webhook_duplicates_total") + 1
    assert value(after, "tgcast_webhook_updates_total", type="message") == \
        value(before, "tgcast_webhook_updates_total", type="message")


@pytest.mark.parametrize(
    ("kind", "secret", "body"),
    [("unauthorized", "wrong", b"{}"), ("bad_update", WEBHOOK_SECRET, b"[1]"),
     ("too_large", WEBHOOK_SECRET, b"x" * (1024 * 1024 + 1))],
)
async def test_refused_requests_count_as_errors_by_kind(client, kind: str, secret: str, body: bytes) -> None:
    before = await scrape(client)
    response = await client.post("/telegram/webhook", content=body,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": secret})
    assert response.status_code in (400, 401, 413)
    after = await scrape(client)
    assert value(after, "tgcast_webhook_errors_total", kind=kind) == \
        value(before, "tgcast_webhook_errors_total", kind=kind) + 1


async def test_failing_handler_counts_as_handler_error(client, tg: Telegram, admin: TgUser, boom) -> None:
    before = await scrape(client)
    response = await tg.post_update(_update(5151, admin, "/boom"))
    assert response.status_code == 200
    after = await scrape(client)
    assert value(after, "tgcast_webhook_errors_total", kind="handler") == \
        value(before, "tgcast_webhook_errors_total", kind="handler") + 1


# ---- what the runtime records (through the API it will call) -------------------------------------


async def test_runtime_counters_and_histograms_move(client, metrics: Metrics) -> None:
    before = await scrape(client)
    async with metrics.pipeline() as m:
        m.inc("tgcast_deliveries_total", outcome="sent", reason="")
        m.inc("tgcast_deliveries_total", 2, outcome="failed", reason="forbidden")
        m.observe("tgcast_cycle_start_lag_seconds", 3.2)
        m.inc("tgcast_flood_waits_total")
        m.inc("tgcast_flood_wait_seconds_total", 37)
        m.inc("tgcast_ticks_total", result="ok")
        m.observe("tgcast_tick_duration_seconds", 0.04)
        m.inc("tgcast_tick_enqueued_total", 5)
        m.inc("tgcast_tick_skipped_total", reason="no_groups")
        m.inc("tgcast_announcement_messages_total", 3, result="delivered")
    await metrics.inc("tgcast_announcement_messages_total", result="blocked")
    await metrics.observe("tgcast_cycle_start_lag_seconds", 900)
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("tgcast_deliveries_total", outcome="sent", reason="") == 1
    assert moved("tgcast_deliveries_total", outcome="failed", reason="forbidden") == 2
    assert moved("tgcast_cycle_start_lag_seconds_count") == 2
    assert moved("tgcast_cycle_start_lag_seconds_sum") == pytest.approx(903.2)
    # Cumulative buckets: 3.2 s falls in le=5, 900 s only in le=1800 and above.
    assert moved("tgcast_cycle_start_lag_seconds_bucket", le="2.0") == 0
    assert moved("tgcast_cycle_start_lag_seconds_bucket", le="5.0") == 1
    assert moved("tgcast_cycle_start_lag_seconds_bucket", le="600.0") == 1
    assert moved("tgcast_cycle_start_lag_seconds_bucket", le="1800.0") == 2
    assert moved("tgcast_cycle_start_lag_seconds_bucket", le="+Inf") == 2
    assert moved("tgcast_flood_waits_total") == 1
    assert moved("tgcast_flood_wait_seconds_total") == 37
    assert moved("tgcast_ticks_total", result="ok") == 1
    assert moved("tgcast_tick_duration_seconds_count") == 1
    assert moved("tgcast_tick_enqueued_total") == 5
    assert moved("tgcast_tick_skipped_total", reason="no_groups") == 1
    assert moved("tgcast_announcement_messages_total", result="delivered") == 3
    assert moved("tgcast_announcement_messages_total", result="blocked") == 1


async def test_fractional_counter_amounts_add_up(client, metrics: Metrics) -> None:
    await metrics.inc("tgcast_flood_wait_seconds_total", 1.5)
    await metrics.inc("tgcast_flood_wait_seconds_total", 2.25)
    assert value(await scrape(client), "tgcast_flood_wait_seconds_total") == pytest.approx(3.75)


async def test_two_recorders_share_the_numbers(client, metrics: Metrics, redis_url: str, settings) -> None:
    """A second process (another replica, a worker) adds to the same counter."""
    from redis.asyncio import Redis

    other = Redis.from_url(redis_url)
    try:
        await Metrics(other, settings.redis_prefix).inc("tgcast_tick_enqueued_total", 4)
        await metrics.inc("tgcast_tick_enqueued_total", 3)
    finally:
        await other.aclose()
    assert value(await scrape(client), "tgcast_tick_enqueued_total") == 7


async def test_undeclared_metric_or_labels_raise(metrics: Metrics) -> None:
    with pytest.raises(ValueError):
        await metrics.inc("tgcast_nope_total")
    with pytest.raises(ValueError):
        await metrics.inc("tgcast_deliveries_total", outcome="sent")  # reason missing
    with pytest.raises(ValueError):
        await metrics.observe("tgcast_deliveries_total", 1, outcome="sent", reason="")  # not a histogram
    with pytest.raises(ValueError):
        await metrics.inc("tgcast_flood_waits_total", -1)


async def test_recording_survives_redis_down(settings) -> None:
    """A metric is not worth failing a webhook or a send batch for."""
    from redis.asyncio import Redis

    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        await Metrics(dead, settings.redis_prefix).inc("tgcast_flood_waits_total")
    finally:
        await dead.aclose()


# ---- the real runtime: POST /tick, then the send-batch job -------------------------------------------


def _tick_auth(settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.tick_token.get_secret_value()}"}


async def test_real_tick_moves_the_tick_metrics(client, settings) -> None:
    before = await scrape(client)
    assert ("tgcast_last_tick_age_seconds", frozenset()) not in before
    response = await client.post("/tick", headers=_tick_auth(settings))
    assert response.status_code == 200
    after = await scrape(client)
    assert value(after, "tgcast_ticks_total", result="ok") == value(before, "tgcast_ticks_total", result="ok") + 1
    assert value(after, "tgcast_tick_duration_seconds_count") == \
        value(before, "tgcast_tick_duration_seconds_count") + 1
    assert ("tgcast_last_tick_age_seconds", frozenset()) in after


async def test_tick_and_batch_move_enqueued_lag_deliveries_and_flood(client, db, net, settings) -> None:
    from jobs.send_batch import run_batch
    from tests.runtime_helpers import job_context, make_broadcaster

    sender = await make_broadcaster(db, net, settings, 801, groups=3)
    flooded = await make_broadcaster(db, net, settings, 802, groups=2)
    await net.set_flood(flooded.tg_user_id, 45)
    before = await scrape(client)
    response = await client.post("/tick", headers=_tick_auth(settings))
    assert response.status_code == 200
    after_tick = await scrape(client)
    assert value(after_tick, "tgcast_tick_enqueued_total") == value(before, "tgcast_tick_enqueued_total") + 2
    cur = await db.execute("SELECT id, owner_id FROM cycles ORDER BY owner_id")
    cycles = {owner: cid for cid, owner in await cur.fetchall()}
    async with job_context(settings) as ctx:
        await run_batch(ctx, cycles[sender.user_id])
        await run_batch(ctx, cycles[flooded.user_id])
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(after_tick, name, **labels)

    assert moved("tgcast_deliveries_total", outcome="sent", reason="") == 3
    assert moved("tgcast_cycle_start_lag_seconds_count") == 2
    assert moved("tgcast_flood_waits_total") == 1
    assert moved("tgcast_flood_wait_seconds_total") >= 45
    assert value(after, "tgcast_accounts", state="flood_paused") == 1


# ---- gauges --------------------------------------------------------------------------------------


async def _user(db, user_id: int, status: str = "active", expires_at: datetime | None = None) -> None:
    await db.execute(
        "INSERT INTO bot_users (user_id, first_name, status, expires_at) VALUES (%(id)s, 'U', %(s)s, %(e)s)",
        {"id": user_id, "s": status, "e": expires_at},
    )


async def _account(db, owner_id: int, status: str = "active", flood_until: datetime | None = None) -> None:
    await db.execute(
        """
        INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, status, flood_until, pause_reason)
        VALUES (%(id)s, %(id)s, '+998900000000', '\\x00', %(s)s, %(f)s::timestamptz,
                CASE WHEN %(f)s::timestamptz IS NULL THEN NULL ELSE 'flood' END)
        """,
        {"id": owner_id, "s": status, "f": flood_until},
    )


async def _active_config(db, owner_id: int) -> None:
    cur = await db.execute(
        "INSERT INTO messages (owner_id, kind, text, content_hash) VALUES (%(id)s, 'text', 'hi', 'h') RETURNING id",
        {"id": owner_id},
    )
    row = await cur.fetchone()
    await db.execute(
        """
        INSERT INTO configs (owner_id, message_id, interval_minutes, active, next_run_at)
        VALUES (%(id)s, %(m)s, 10, true, now())
        """,
        {"id": owner_id, "m": row[0]},
    )


async def test_account_user_and_config_gauges_follow_rows(client, db) -> None:
    empty = await scrape(client)
    assert value(empty, "tgcast_accounts", state="active") == 0
    assert ("tgcast_accounts", frozenset({("state", "revoked")})) in empty  # zero, but present
    now = datetime.now(UTC)
    for uid in (1, 2, 3, 4, 5):
        await _user(db, uid)
    await _user(db, 6, "banned")
    await _user(db, 7, "active", expires_at=now - timedelta(days=1))
    await _account(db, 1)
    await _account(db, 2)
    await _account(db, 3, "revoked")
    await _account(db, 4, flood_until=now + timedelta(minutes=30))
    await _account(db, 5, flood_until=now - timedelta(minutes=30))  # a pause that is over
    await _active_config(db, 1)
    await _active_config(db, 2)
    series = await scrape(client)
    assert value(series, "tgcast_accounts", state="active") == 3
    assert value(series, "tgcast_accounts", state="flood_paused") == 1
    assert value(series, "tgcast_accounts", state="revoked") == 1
    assert value(series, "tgcast_configs_active") == 2
    assert value(series, "tgcast_users", status="active") == 5
    assert value(series, "tgcast_users", status="banned") == 1
    assert value(series, "tgcast_users", status="expired") == 1


async def _paid(db, user_id: int, charge: str, plan: str, days: int, stars: int, *, first: bool = False,
                renewal: bool = False, expires: datetime | None = None) -> int:
    from services.payments import PaidCharge, record_payment

    grant = await record_payment(db, PaidCharge(
        user_id=user_id, charge_id=charge, provider_charge_id="", currency="XTR", amount=stars,
        payload=f"tgc1:{plan}:{days}:{stars}:{user_id}", recurring=first or renewal, first_recurring=first,
        subscription_expires=expires))
    assert grant is not None
    return grant.payment.id


async def test_payment_counters_and_renewing_subscriptions_follow_rows_by_plan(client, db) -> None:
    from services.payments import cancel_renewal, refund

    async def telegram(user_id: int, charge_id: str) -> None:
        return None

    empty = await scrape(client)
    assert not [k for k in empty if k[0].startswith(("tgcast_payment", "tgcast_refund", "tgcast_subscriptions"))]
    now = datetime.now(UTC)
    await _user(db, 1)
    await _user(db, 2)
    week = await _paid(db, 1, "c-week-1", "week", 7, 250)
    await _paid(db, 2, "c-week-2", "week", 7, 250)
    await _paid(db, 1, "c-sub-1", "month", 30, 750, first=True, expires=now + timedelta(days=30))
    await _paid(db, 1, "c-sub-1-r", "month", 30, 750, renewal=True, expires=now + timedelta(days=60))
    await _paid(db, 2, "c-sub-2", "month", 30, 750, first=True, expires=now + timedelta(days=30))
    await refund(db, week, admin_id=99, call=telegram)
    await cancel_renewal(db, 2, call=telegram)
    series = await scrape(client)
    assert value(series, "tgcast_payments_total", plan="week") == 2
    assert value(series, "tgcast_payments_total", plan="month") == 3
    assert value(series, "tgcast_payment_stars_total", plan="week") == 500
    assert value(series, "tgcast_payment_stars_total", plan="month") == 2250
    assert value(series, "tgcast_refunds_total", plan="week") == 1
    assert value(series, "tgcast_refunded_stars_total", plan="week") == 250
    assert value(series, "tgcast_refunds_total", plan="month") == 0
    assert value(series, "tgcast_subscriptions_renewing", plan="month") == 1
    assert value(series, "tgcast_subscriptions_renewing", plan="week") == 0


def test_computed_counters_cannot_be_recorded() -> None:
    from services.metrics import _Accumulator, _Recorder

    with pytest.raises(ValueError):
        _Recorder(_Accumulator(), "x:").inc("tgcast_payments_total", plan="week")


def test_the_gauges_count_the_queues_the_jobs_use(settings) -> None:
    from worker.queues import announce_queue_name, broadcast_queue_name

    assert queue_names(settings) == [broadcast_queue_name(settings), announce_queue_name(settings)]


async def test_queue_gauges_follow_rq(client, settings) -> None:
    broadcast, announce = queue_names(settings)
    before = await scrape(client)
    assert value(before, "tgcast_queue_depth", queue=broadcast) == 0
    assert ("tgcast_queue_scheduled_jobs", frozenset({("queue", announce)})) in before
    with SyncRedis.from_url(settings.redis_url) as conn:
        q = Queue(broadcast, connection=conn)
        q.enqueue("jobs.send_batch.send_batch", 1, 0, job_id="metrics-test-now")
        q.enqueue("jobs.send_batch.send_batch", 2, 0, job_id="metrics-test-now-2")
        q.enqueue_at(datetime.now(UTC) + timedelta(hours=1), "jobs.send_batch.send_batch", 3, 0)
        Queue(announce, connection=conn).enqueue("jobs.announce.run", 1)
    after = await scrape(client)
    assert value(after, "tgcast_queue_depth", queue=broadcast) == 2
    assert value(after, "tgcast_queue_scheduled_jobs", queue=broadcast) == 1
    assert value(after, "tgcast_queue_depth", queue=announce) == 1


async def test_last_tick_age_appears_once_a_tick_is_recorded(client, redis, settings) -> None:
    assert ("tgcast_last_tick_age_seconds", frozenset()) not in await scrape(client)
    await redis.set(last_tick_key(settings), time.time() - 120)
    age = value(await scrape(client), "tgcast_last_tick_age_seconds")
    assert age >= 120


# ---- token ---------------------------------------------------------------------------------------


class TestToken:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"metrics_token": "metrics-token-0123456789"}

    async def test_token_required_when_set(self, client) -> None:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        basic = await client.get("/metrics", headers={"Authorization": "Basic metrics-token-0123456789"})
        assert basic.status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
        assert ok.status_code == 200
        assert "tgcast_configs_active" in ok.text


async def test_open_without_token(client) -> None:
    assert (await client.get("/metrics")).status_code == 200


# ---- exposition (pure) ---------------------------------------------------------------------------


def test_label_values_are_escaped() -> None:
    spec = MetricSpec("tgcast_x_total", "counter", "help with \\ and\nnewline", ("reason",))
    tricky = 'a "quoted" \\ back\nslash'
    text = render([Family(spec, [Sample("tgcast_x_total", (("reason", tricky),), 2)])])
    assert 'tgcast_x_total{reason="a \\"quoted\\" \\\\ back\\nslash"} 2' in text
    assert "# HELP tgcast_x_total help with \\\\ and\\nnewline" in text
    assert parse(text)[("tgcast_x_total", frozenset({("reason", tricky)}))] == 2


@pytest.mark.parametrize(("observed", "bucket"), [(0.0, "0.5"), (0.5, "0.5"), (0.51, "1.0"), (1800, "1800.0"),
                                                  (1800.1, "+Inf")])
def test_bucket_for_is_inclusive_upper_bound(observed: float, bucket: str) -> None:
    assert bucket_for(METRICS["tgcast_cycle_start_lag_seconds"].buckets, observed) == bucket


def test_every_metric_is_declared_properly() -> None:
    for name, spec in METRICS.items():
        assert name == spec.name and re.fullmatch(r"tgcast_[a-z_]+", name)
        assert spec.kind in {"counter", "histogram", "gauge"} and spec.help
        assert (spec.kind == "counter") == name.endswith("_total")
        if spec.kind == "histogram":
            assert list(spec.buckets) == sorted(set(spec.buckets)) and spec.buckets
            assert "le" not in spec.labels
        else:
            assert not spec.buckets
