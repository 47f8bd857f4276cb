"""Counters and histograms kept in Redis, so every web replica and worker adds to the same numbers.

Each recorded metric is one Redis hash under `<prefix>metrics:<name>`; a field is the JSON of the
sample's label values (plus, for histograms, which part: a bucket, the sum or the count). Recording
is a handful of HINCRBY/HINCRBYFLOAT commands, and a scrape reads every hash back. Gauges are not
recorded at all: `services.gauges` computes them from PostgreSQL and Redis at scrape time.

Why not prometheus_client's own counters: they live in one process (its multiprocess mode shares
files on one machine), and tgcast's replicas and workers run anywhere. The totals stay in Redis; at
scrape time a custom collector hands them to prometheus_client, which writes the text format.

Every metric is declared once in `METRICS`, with its type, help text, label names and buckets; a
name or label set that is not declared is a programming error and raises at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
TICK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    kind: str  # counter, histogram, gauge
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    # Read from PostgreSQL at scrape time (services.gauges) rather than recorded in Redis: counters
    # whose source of truth is a table (payments) are exact whichever replica answers and survive
    # a Redis flush.
    computed: bool = False


def _declare(*specs: MetricSpec) -> dict[str, MetricSpec]:
    return {spec.name: spec for spec in specs}


METRICS: dict[str, MetricSpec] = _declare(
    # Recorded by the send-batch worker.
    MetricSpec("tgcast_deliveries_total", "counter",
               "Deliveries that reached an outcome, by outcome (sent, failed, cancelled, retry) and reason.",
               ("outcome", "reason")),
    MetricSpec("tgcast_cycle_start_lag_seconds", "histogram",
               "Time from a cycle's scheduled start to its first batch.", buckets=LAG_BUCKETS),
    MetricSpec("tgcast_flood_waits_total", "counter", "Flood waits Telegram asked of an account."),
    MetricSpec("tgcast_flood_wait_seconds_total", "counter", "Seconds of flood wait Telegram asked for."),
    # Recorded by POST /tick.
    MetricSpec("tgcast_ticks_total", "counter", "Ticks run, by result (ok, error).", ("result",)),
    MetricSpec("tgcast_tick_duration_seconds", "histogram", "How long a tick took.",
               buckets=TICK_BUCKETS),
    MetricSpec("tgcast_tick_enqueued_total", "counter", "Cycles the tick created and enqueued."),
    MetricSpec("tgcast_tick_skipped_total", "counter", "Due configs a tick skipped, by reason.", ("reason",)),
    # Recorded by POST /telegram/webhook.
    MetricSpec("tgcast_webhook_updates_total", "counter", "Updates handed to the dispatcher, by type.",
               ("type",)),
    MetricSpec("tgcast_webhook_duplicates_total", "counter", "Redelivered updates answered without handling."),
    MetricSpec("tgcast_webhook_errors_total", "counter",
               "Webhook requests refused or failed, by kind (unauthorized, too_large, bad_update, "
               "unavailable, handler, dispatch).", ("kind",)),
    MetricSpec("tgcast_webhook_latency_seconds", "histogram", "Time to handle one webhook update.",
               buckets=LATENCY_BUCKETS),
    # Recorded by the announcement job.
    MetricSpec("tgcast_announcement_messages_total", "counter",
               "Announcement messages, by result (delivered, failed, blocked).", ("result",)),
    # Computed at scrape time (services.gauges).
    MetricSpec("tgcast_accounts", "gauge", "Connected accounts by state (active, flood_paused, revoked).",
               ("state",)),
    MetricSpec("tgcast_users", "gauge", "Bot users by status (pending, active, expired, banned).", ("status",)),
    MetricSpec("tgcast_configs_active", "gauge", "Broadcast configs that are switched on."),
    MetricSpec("tgcast_queue_depth", "gauge", "Jobs waiting in an RQ queue.", ("queue",)),
    MetricSpec("tgcast_queue_scheduled_jobs", "gauge", "Jobs scheduled for later in an RQ queue.", ("queue",)),
    MetricSpec("tgcast_last_tick_age_seconds", "gauge", "Seconds since the last tick finished."),
    # Stars payments, by plan, read from the payments table (refunded payments stay counted in
    # payments and stars; refunds count them again).
    MetricSpec("tgcast_payments_total", "counter", "Stars payments received, by plan (renewals included).",
               ("plan",), computed=True),
    MetricSpec("tgcast_payment_stars_total", "counter", "Telegram Stars received, by plan (refunded ones included).",
               ("plan",), computed=True),
    MetricSpec("tgcast_refunds_total", "counter", "Stars payments refunded, by plan.", ("plan",), computed=True),
    MetricSpec("tgcast_refunded_stars_total", "counter", "Telegram Stars refunded, by plan.", ("plan",),
               computed=True),
    MetricSpec("tgcast_subscriptions_renewing", "gauge", "Stars subscriptions Telegram will renew, by plan.",
               ("plan",)),
)


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a counter or a gauge."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """One label set of a histogram: cumulative counts per upper bound ("+Inf" last), and the sum."""

    labels: tuple[str, ...]  # the values, in the order of the spec's label names
    buckets: tuple[tuple[str, float], ...]
    sum: float


@dataclass(slots=True)
class Family:
    spec: MetricSpec
    samples: list[Sample] = field(default_factory=list)  # counters and gauges
    series: list[Series] = field(default_factory=list)  # histograms


def _spec(name: str, kind: str, labels: Mapping[str, object]) -> MetricSpec:
    spec = METRICS.get(name)
    if spec is None or spec.kind != kind:
        raise ValueError(f"{name} is not a declared {kind}")
    if set(labels) != set(spec.labels):
        raise ValueError(f"{name} takes labels {spec.labels}, got {tuple(labels)}")
    return spec


def _field(spec: MetricSpec, labels: Mapping[str, object], part: str | None = None) -> str:
    values: list[str] = [str(labels[name]) for name in spec.labels]
    return json.dumps(values if part is None else [*values, part], ensure_ascii=False)


def bucket_for(buckets: tuple[float, ...], value: float) -> str:
    """The upper bound of the first bucket holding `value` ("+Inf" past the last)."""
    for bound in buckets:
        if value <= bound:
            return _fmt_bound(bound)
    return "+Inf"


def _fmt_bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class _Recorder:
    """The commands of one recording, queued on a pipeline (one round trip however many)."""

    def __init__(self, pipe: Any, prefix: str) -> None:
        self._pipe = pipe
        self._prefix = prefix

    def inc(self, name: str, amount: float = 1, **labels: object) -> None:
        spec = _spec(name, "counter", labels)
        if spec.computed:
            raise ValueError(f"{name} is read from its table at scrape time, not recorded")
        if amount < 0:
            raise ValueError(f"{name}: a counter only goes up")
        key, fld = f"{self._prefix}{name}", _field(spec, labels)
        if isinstance(amount, int):
            self._pipe.hincrby(key, fld, amount)
        else:
            self._pipe.hincrbyfloat(key, fld, amount)

    def observe(self, name: str, value: float, **labels: object) -> None:
        spec = _spec(name, "histogram", labels)
        key = f"{self._prefix}{name}"
        self._pipe.hincrby(key, _field(spec, labels, bucket_for(spec.buckets, value)), 1)
        self._pipe.hincrbyfloat(key, _field(spec, labels, "sum"), float(value))
        self._pipe.hincrby(key, _field(spec, labels, "count"), 1)


class Metrics:
    """Recording and reading tgcast's counters and histograms. Recording never raises on a Redis
    failure: a lost increment is better than a failed webhook or send batch."""

    def __init__(self, redis: Redis, redis_prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{redis_prefix}metrics:"

    async def inc(self, name: str, amount: float = 1, **labels: object) -> None:
        async with self.pipeline() as rec:
            rec.inc(name, amount, **labels)

    async def observe(self, name: str, value: float, **labels: object) -> None:
        async with self.pipeline() as rec:
            rec.observe(name, value, **labels)

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[_Recorder]:
        """Queue several recordings and send them in one round trip:
        `async with metrics.pipeline() as m: m.inc(...); m.observe(...)`."""
        pipe = self._redis.pipeline(transaction=False)
        yield _Recorder(pipe, self._prefix)
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("metrics not recorded: %s", type(exc).__name__)

    async def collect(self) -> list[Family]:
        """Every recorded counter and histogram, in declaration order (gauges are left out)."""
        recorded = [spec for spec in METRICS.values() if spec.kind != "gauge" and not spec.computed]
        pipe = self._redis.pipeline(transaction=False)
        for spec in recorded:
            pipe.hgetall(f"{self._prefix}{spec.name}")
        raw = await pipe.execute()
        return [_family(spec, hashes) for spec, hashes in zip(recorded, raw, strict=True)]

    async def reset(self) -> None:
        """Forget every recorded value (tests; an operator starting over)."""
        await self._redis.delete(*(f"{self._prefix}{name}" for name in METRICS))


def _decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, float]:
    out = {}
    for key, value in raw.items():
        k = key.decode() if isinstance(key, bytes) else key
        v = value.decode() if isinstance(value, bytes) else value
        out[k] = float(v)
    return out


def _family(spec: MetricSpec, raw: Mapping[bytes | str, bytes | str]) -> Family:
    values = _decode(raw)
    family = Family(spec)
    if spec.kind == "counter":
        for fld, value in sorted(values.items()):
            family.samples.append(Sample(spec.name, tuple(zip(spec.labels, json.loads(fld), strict=True)), value))
        return family
    # Histogram: per-bucket counts are stored as they fell; exposition wants them cumulative.
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for fld, value in values.items():
        *label_values, part = json.loads(fld)
        series.setdefault(tuple(label_values), {})[part] = value
    # prometheus_client exposes the +Inf bucket as the count (the stored count is the same number).
    bounds = [_fmt_bound(b) for b in spec.buckets] + ["+Inf"]
    for label_values, parts in sorted(series.items()):
        running, buckets = 0.0, []
        for bound in bounds:
            running += parts.get(bound, 0.0)
            buckets.append((bound, running))
        family.series.append(Series(label_values, tuple(buckets), parts.get("sum", 0.0)))
    return family


def gauge(name: str, samples: Iterable[tuple[Mapping[str, object], float]]) -> Family:
    """A metric computed at scrape time: a gauge, or a counter read from its table (`computed`)."""
    spec = METRICS[name]
    if spec.kind != "gauge" and not spec.computed:
        raise ValueError(f"{name} is recorded, not computed")
    family = Family(spec)
    for labels, value in samples:
        _spec(name, spec.kind, labels)
        family.samples.append(Sample(name, tuple((k, str(labels[k])) for k in spec.labels), float(value)))
    return family


# ---- exposition: prometheus_client writes the text format ----------------------------------------

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what `prometheus_client.generate_latest` writes


class _Snapshot:
    """A prometheus_client collector over totals already read from Redis (its `collect` is
    synchronous; the reads are not)."""

    def __init__(self, families: Iterable[Family]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        for family in self._families:
            spec = family.spec
            if spec.kind == "histogram":
                histogram = HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)
                for series in family.series:
                    histogram.add_metric(list(series.labels), list(series.buckets), series.sum)
                yield histogram
                continue
            kind = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            metric = kind(spec.name, spec.help, labels=spec.labels)
            for sample in family.samples:
                values = dict(sample.labels)
                metric.add_metric([values[name] for name in spec.labels], sample.value)
            yield metric


def render(families: Iterable[Family]) -> str:
    # Imported here: only the web process renders, and workers need not load the exposition stack.
    from prometheus_client.exposition import generate_latest

    return generate_latest(_Snapshot(families)).decode()


class _Accumulator:
    """Stands in for a Redis pipeline under `_Recorder`: increments are summed in memory."""

    def __init__(self) -> None:
        self.ints: dict[tuple[str, str], int] = {}
        self.floats: dict[tuple[str, str], float] = {}

    def hincrby(self, key: str, fld: str, amount: int) -> None:
        self.ints[(key, fld)] = self.ints.get((key, fld), 0) + amount

    def hincrbyfloat(self, key: str, fld: str, amount: float) -> None:
        self.floats[(key, fld)] = self.floats.get((key, fld), 0.0) + amount


class BufferedMetrics(Metrics):
    """Recordings summed in this process and written to Redis by `flush()` (every second in the web
    process, and before every scrape), so a webhook update costs no Redis round trip for its
    metrics. Totals stay shared across replicas: each flush adds its deltas with HINCRBY."""

    def __init__(self, redis: Redis, redis_prefix: str) -> None:
        super().__init__(redis, redis_prefix)
        self._pending = _Accumulator()

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[_Recorder]:
        yield _Recorder(self._pending, self._prefix)

    async def flush(self) -> None:
        pending, self._pending = self._pending, _Accumulator()
        if not pending.ints and not pending.floats:
            return
        pipe = self._redis.pipeline(transaction=False)
        for (key, fld), amount in pending.ints.items():
            pipe.hincrby(key, fld, amount)
        for (key, fld), value in pending.floats.items():
            pipe.hincrbyfloat(key, fld, value)
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("metrics not recorded: %s", type(exc).__name__)

    async def flush_every(self, seconds: float) -> None:
        """The web process's background flusher (cancelled at shutdown, after a last flush)."""
        while True:
            await asyncio.sleep(seconds)
            await self.flush()

    async def collect(self) -> list[Family]:
        await self.flush()
        return await super().collect()
