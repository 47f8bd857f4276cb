"""services.rounds, the pure part: when the next round goes out, by the tick's own rules, and
how the time is said ("at 14:05 UTC, in 3 min")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.i18n import Translator
from core.schedule import cycle_jitter_ms, cycle_start
from db.rows import Config
from services.rounds import clock, next_round_at, relative

T0 = datetime(2031, 3, 4, 14, 0, tzinfo=UTC)
EN = Translator("en")


def _config(*, active: bool = True, next_run_at: datetime | None = T0, last: datetime | None = None,
            minutes: int | None = 10, cycle: int = 3, owner: int = 42) -> Config:
    return Config(owner_id=owner, message_id=1, interval_minutes=minutes, active=active, next_run_at=next_run_at,
                  cycle=cycle, last_scheduled_at=last, updated_at=T0)


def test_nothing_goes_out_while_the_broadcast_is_off() -> None:
    assert next_round_at(_config(active=False), jitter_max_ms=0) is None
    assert next_round_at(_config(next_run_at=None), jitter_max_ms=0) is None
    assert next_round_at(_config(minutes=None), jitter_max_ms=0) is None


def test_the_stored_time_when_it_respects_the_interval() -> None:
    assert next_round_at(_config(last=T0 - timedelta(minutes=10)), jitter_max_ms=0) == T0


def test_never_earlier_than_an_interval_after_the_previous_start() -> None:
    # A stale stored time, or an interval made longer since: the bound wins, as in the tick.
    last = T0 - timedelta(minutes=2)
    assert next_round_at(_config(last=last, minutes=30), jitter_max_ms=0) == last + timedelta(minutes=30)


def test_the_rounds_own_jitter_is_added() -> None:
    at = next_round_at(_config(cycle=3, owner=42), jitter_max_ms=15000)
    assert at == T0 + timedelta(milliseconds=cycle_jitter_ms(42, 4, 15000))  # the round to come is the 4th


def test_a_flood_pause_postpones_to_its_end() -> None:
    until = T0 + timedelta(minutes=7)
    assert next_round_at(_config(), jitter_max_ms=0, flood_until=until) == until
    assert next_round_at(_config(), jitter_max_ms=0, flood_until=T0 - timedelta(minutes=1)) == T0


def test_per_group_spacing_waits_for_the_earliest_group() -> None:
    # Every selected group was posted; the earliest of them 5 minutes late: the first post waits.
    floor = T0 - timedelta(minutes=5)
    assert next_round_at(_config(), jitter_max_ms=0, last_post_floor=floor) == floor + timedelta(minutes=10)
    assert next_round_at(_config(), jitter_max_ms=0, last_post_floor=T0 - timedelta(hours=1)) == T0


@given(stored=st.integers(-10_000, 10_000), last=st.one_of(st.none(), st.integers(-10_000, 10_000)),
       minutes=st.integers(1, 10080), cycle=st.integers(0, 1000))
def test_agrees_with_the_ticks_cycle_start(stored: int, last: int | None, minutes: int, cycle: int) -> None:
    config = _config(next_run_at=T0 + timedelta(seconds=stored), minutes=minutes, cycle=cycle,
                     last=None if last is None else T0 + timedelta(seconds=last))
    assert config.next_run_at is not None
    expected = cycle_start(config.next_run_at, config.last_scheduled_at, minutes) \
        + timedelta(milliseconds=cycle_jitter_ms(config.owner_id, cycle + 1, 15000))
    assert next_round_at(config, jitter_max_ms=15000) == expected


@pytest.mark.parametrize(("seconds", "said"), [
    (1, "in 1 min"), (47, "in 1 min"), (60, "in 1 min"), (61, "in 2 min"), (180, "in 3 min"),
    (3540, "in 59 min"), (3599, "in 1 h 0 min"), (3600, "in 1 h 0 min"), (7500, "in 2 h 5 min"),
    (86_400, "in 1 d 0 h"), (604_800 - 60, "in 6 d 23 h"), (-30, "in 1 min"),
])
def test_relative_time_is_rounded_up(seconds: int, said: str) -> None:
    assert relative(EN, T0 + timedelta(seconds=seconds), T0) == said


def test_the_clock_names_the_date_only_when_it_is_not_today() -> None:
    assert clock(T0 + timedelta(minutes=5), T0) == "14:05 UTC"
    assert clock(T0 + timedelta(hours=12), T0) == "2031-03-05 02:00 UTC"


@pytest.mark.parametrize("lang", ["uz", "ru", "en"])
def test_every_language_says_it(lang: str) -> None:
    said = relative(Translator(lang), T0 + timedelta(minutes=125), T0)
    assert "2" in said and "5" in said
