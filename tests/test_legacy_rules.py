"""The pure rules of the import (legacy.rules, legacy.urls): exhaustive and cheap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from legacy import rules
from legacy.rules import Access
from legacy.urls import LegacyUrlError, parse_legacy_url

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


# ---- URLs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "conninfo", "schema", "dropped"), [
    ("postgresql+asyncpg://postgres:1111@postgres:5432/tgbot", "postgresql://postgres:1111@postgres:5432/tgbot",
     "public", ()),
    ("postgres://u:p%40ss@db:6543/app?schema=bot&connection_limit=5&pool_timeout=10&pgbouncer=true&sslmode=require",
     "postgresql://u:p%40ss@db:6543/app?sslmode=require", "bot", ("connection_limit", "pgbouncer", "pool_timeout",
                                                                   "schema")),
    ("postgresql://u@h/db?statement_cache_size=0&socket_timeout=3&sslaccept=strict&connect_timeout=4"
     "&application_name=x", "postgresql://u@h/db?connect_timeout=4&application_name=x", "public",
     ("socket_timeout", "sslaccept", "statement_cache_size")),
    ("postgresql+psycopg2://u@h/db?schema=", "postgresql://u@h/db", "public", ("schema",)),
])
def test_urls_are_taken_as_the_older_bots_operators_wrote_them(url, conninfo, schema, dropped) -> None:
    parsed = parse_legacy_url(url)
    assert (parsed.conninfo, parsed.schema, parsed.dropped) == (conninfo, schema, dropped)


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "redis://h", "", "postgresql://", "postgresql://u@h:x/db",
                                 "postgresql://u@h/db?schema=a;drop"])
def test_a_url_the_import_cannot_use_is_refused_without_repeating_it(url) -> None:
    with pytest.raises(LegacyUrlError) as caught:
        parse_legacy_url(url.replace("u@", "u:hunter2@"))
    assert "hunter2" not in str(caught.value)


def test_the_printable_label_never_holds_the_password() -> None:
    parsed = parse_legacy_url("postgresql://bot:s3cret@db.internal:5433/tgbot?schema=public")
    assert parsed.label == "db.internal:5433/tgbot?schema=public"
    assert "s3cret" not in repr(parsed)


# ---- ids ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [
    ("123456789", 123456789), (" 42 ", 42), ("@name", None), ("", None), (None, None), ("-5", None), ("0", None),
    ("12a", None), ("٣٤", None), (str(2**63), None), (str(2**63 - 1), 2**63 - 1),
])
def test_user_ids(raw, expected) -> None:
    assert rules.user_id(raw) == expected


@pytest.mark.parametrize(("raw", "kind", "expected"), [
    ("-1001234567890", "chat", -1001234567890),  # marked ids are kept whatever the type says
    ("-4001", "group", -4001),
    ("3871262979", "supergroup", -1003871262979),  # Node's bare channel id
    ("3871262979", "channel", -1003871262979),
    ("555", "chat", -555), ("555", "group", -555),
    ("555", None, None), ("555", "mystery", None),  # bare, kind unknown: resolve online or report
    ("abc", "chat", None), ("", "chat", None), ("0", "chat", None), ("-0", "group", None),
    (str(2**63 - 10), "supergroup", None),  # out of range once marked
    ("1001", "chat", -1001), ("999999999999", "group", -999999999999), ("1000000000000", "chat", None),
    ("1", "supergroup", -1000000000001),
])
def test_group_ids_are_normalised_to_the_marked_form(raw, kind, expected) -> None:
    assert rules.group_id(raw, kind) == expected


@given(st.integers(min_value=1, max_value=10**12 - 1), st.sampled_from(["supergroup", "channel", "chat", "group"]))
@example(1, "chat")
@example(1001, "chat")  # "-1001" starts like a marked channel id, and is a basic group
@example(10**12 - 1, "group")
def test_normalising_a_marked_id_again_changes_nothing(bare: int, kind: str) -> None:
    marked = rules.group_id(str(bare), kind)
    assert marked is not None and marked < 0
    assert rules.group_id(str(marked), kind) == marked
    assert rules.group_kind(marked, kind) in {"group", "supergroup", "channel"}
    assert (rules.group_kind(marked, kind) == "group") == (kind in {"chat", "group"})


@pytest.mark.parametrize(("raw", "expected"), [
    ("seller_uz", "seller_uz"), ("@seller_uz", "seller_uz"), ("User", None), ("Ali Valiyev", None), ("", None),
    (None, None), ("abc", None), ("9lives", None),
])
def test_usernames_drop_the_older_bots_placeholders(raw, expected) -> None:
    assert rules.username(raw) == expected


# ---- access --------------------------------------------------------------------------------------------


def naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


@pytest.mark.parametrize(("expires", "created", "flavour", "expected"), [
    (None, NOW - timedelta(days=9), "python", Access.PERMANENT),
    (NOW + timedelta(days=1), NOW - timedelta(days=9), "python", Access.ACTIVE),
    (NOW + timedelta(seconds=1), NOW, "node", Access.ACTIVE),
    (NOW - timedelta(days=1) + timedelta(microseconds=5), NOW - timedelta(days=1), "python", Access.PENDING),
    (NOW - timedelta(days=1) + timedelta(seconds=1, microseconds=999_999), NOW - timedelta(days=1), "python",
     Access.PENDING),
    (NOW - timedelta(days=1) + timedelta(seconds=2), NOW - timedelta(days=1), "python", Access.EXPIRED),
    (NOW - timedelta(days=1), NOW - timedelta(days=31), "python", Access.EXPIRED),
    (datetime(1970, 1, 1), NOW - timedelta(days=3), "node", Access.PENDING),
    (datetime(1970, 1, 1), NOW - timedelta(days=3), "python", Access.PENDING),
    (NOW - timedelta(days=1), NOW - timedelta(days=1), "node", Access.EXPIRED),  # Node marks pending by epoch only
    (NOW, NOW - timedelta(days=5), "python", Access.EXPIRED),  # "<= now" is not access
])
def test_access_rows(expires, created, flavour, expected) -> None:
    as_naive = naive(expires) if expires is not None else None
    assert rules.access_of(as_naive, naive(created), NOW, flavour) is expected


def test_no_access_row_is_its_own_state() -> None:
    assert rules.access_of(None, None, NOW, "python", has_row=False) is Access.NONE


def test_naive_times_are_utc_never_the_database_zone() -> None:
    assert rules.as_utc(datetime(2026, 1, 1, 10, 0)) == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert rules.as_utc(None) is None


# ---- intervals ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flavour", "values", "unit"), [
    ("python", [7, 13], "seconds"), ("node", [300, 600, 3600], "seconds"), ("node", [5, 10, 30], "minutes"),
    ("node", [300_000, 600_000], "milliseconds"), ("node", [], "seconds"), ("node", [0, 300], "seconds"),
    ("node", [300, 7], "minutes"),
])
def test_the_interval_unit(flavour, values, unit) -> None:
    assert rules.interval_unit(flavour, values) == unit


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (300, "seconds", (5, False)), (60, "seconds", (3, True)), (61, "seconds", (3, True)), (181, "seconds", (4, True)),
    (10080 * 60, "seconds", (10080, False)), (10081 * 60, "seconds", (10080, True)), (5, "minutes", (5, False)),
    (600_000, "milliseconds", (10, False)), (None, "seconds", (None, False)), (0, "seconds", (None, False)),
    (-60, "seconds", (None, False)),
])
def test_intervals_are_whole_minutes_within_bounds(value, unit, expected) -> None:
    assert rules.interval_minutes(value, unit, 3, 10080) == expected


@given(st.integers(min_value=1, max_value=10**8))
def test_an_imported_interval_never_posts_more_often(seconds: int) -> None:
    minutes, clamped = rules.interval_minutes(seconds, "seconds", 3, 10080)
    assert minutes is not None and 3 <= minutes <= 10080
    assert minutes * 60 >= seconds or minutes == 10080
    assert clamped == (minutes * 60 != seconds)


# ---- the cut-over ---------------------------------------------------------------------------------------


def test_the_first_run_waits_for_the_latest_constraint() -> None:
    interval = timedelta(minutes=5)
    run = rules.first_run_at(now=NOW, interval=interval, last_run_at=NOW - timedelta(minutes=1),
                             last_posts=[NOW - timedelta(seconds=10), NOW - timedelta(minutes=2)], retry_at=None)
    assert run == NOW + timedelta(minutes=4)  # the last run + interval, later than the earliest group's
    assert rules.first_run_at(now=NOW, interval=interval, last_run_at=None, last_posts=[],
                              retry_at=None) == NOW
    assert rules.first_run_at(now=NOW, interval=interval, last_run_at=None, last_posts=[],
                              retry_at=NOW + timedelta(minutes=9)) == NOW + timedelta(minutes=9)
    assert rules.first_run_at(now=NOW, interval=interval, last_run_at=NOW - timedelta(days=1),
                              last_posts=[NOW - timedelta(days=1)], retry_at=NOW - timedelta(hours=1)) == NOW


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=5), st.integers(min_value=1, max_value=10**4))
def test_the_first_run_is_never_in_the_past_nor_before_a_group_can_take_a_post(ages: list[int], minutes: int) -> None:
    posts = [NOW - timedelta(seconds=a) for a in ages]
    run = rules.first_run_at(now=NOW, interval=timedelta(minutes=minutes), last_run_at=None, last_posts=posts,
                             retry_at=None)
    assert run >= NOW
    if posts:
        assert run >= min(posts) + timedelta(minutes=minutes)
