"""What a round trip to Telegram costs, as the emulator charges it: pure numbers, no I/O.

A send's latency is modelled as log-normal: most answers come near the median and a few take many
times longer, the shape measured latencies of remote calls have. The model is given by the two
numbers people quote (p50 and p99), from which the distribution's parameters follow.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from statistics import NormalDist

_Z99 = NormalDist().inv_cdf(0.99)  # ≈ 2.326: the p99 of a log-normal is exp(mu + _Z99 * sigma)
# A log-normal has no upper bound. Beyond this multiple of the p99 (probability ~1e-6 for the tails
# benchmarks use) a real client would have timed out; capping keeps one draw from stalling a run.
_CAP_TIMES_P99 = 10.0


def lognormal_params(p50_ms: float, p99_ms: float) -> tuple[float, float]:
    """(mu, sigma) of the log-normal (in ln-milliseconds) whose median is p50 and 99th percentile p99."""
    if p50_ms <= 0 or p99_ms < p50_ms:
        raise ValueError("need 0 < p50 <= p99")
    return math.log(p50_ms), math.log(p99_ms / p50_ms) / _Z99


def lognormal_draw_ms(p50_ms: float, p99_ms: float, rng: random.Random) -> float:
    """One latency in milliseconds from that log-normal (capped, see `_CAP_TIMES_P99`); 0 if p50 is 0."""
    if p50_ms <= 0:
        return 0.0
    mu, sigma = lognormal_params(p50_ms, p99_ms)
    return min(rng.lognormvariate(mu, sigma), p99_ms * _CAP_TIMES_P99)


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """The emulator's costs: a fixed connect time and a log-normal send (and upload) time.
    All zero (the default) charges nothing, so tests run at memory speed; a p99 of 0 means no tail
    (every send takes the p50)."""

    connect_ms: float = 0
    send_p50_ms: float = 0
    send_p99_ms: float = 0
    # What an open connection costs its process while it is open, as a real client's does: memory
    # (KiB kept resident per connection) and the keep-alive (a ping every `ping_every_s`, each
    # costing `ping_cpu_ms` of the process's CPU and a round trip to the network). Measured against a
    # real MTProto server: docs/benchmarks.md, "The cost of an open connection".
    conn_kib: float = 0
    ping_every_s: float = 0
    ping_cpu_ms: float = 0

    def __post_init__(self) -> None:
        if min(self.connect_ms, self.send_p50_ms, self.conn_kib, self.ping_every_s, self.ping_cpu_ms) < 0:
            raise ValueError("latencies and costs cannot be negative")
        if self.send_p99_ms and self.send_p99_ms < self.send_p50_ms:
            raise ValueError("send p99 is below send p50")

    @property
    def connect_s(self) -> float:
        return self.connect_ms / 1000

    def send_s(self, rng: random.Random) -> float:
        p99_ms = self.send_p99_ms or self.send_p50_ms
        return lognormal_draw_ms(self.send_p50_ms, p99_ms, rng) / 1000
