"""Pure rules of the user journey: paging of button lists and message content limits and identity."""

from __future__ import annotations

import pytest

from core.content import CAPTION_LIMIT, TEXT_LIMIT, content_hash, preview, utf16_len
from core.paging import page_of


@pytest.mark.parametrize(
    ("requested", "total", "size", "number", "count", "prev", "next_"),
    [
        (0, 0, 10, 0, 1, False, False),  # an empty list still has one (empty) page
        (0, 10, 10, 0, 1, False, False),
        (0, 11, 10, 0, 2, False, True),
        (1, 11, 10, 1, 2, True, False),
        (5, 11, 10, 1, 2, True, False),  # past the end: the last page
        (-3, 11, 10, 0, 2, False, True),  # negative: the first page
        (2, 25, 5, 2, 5, True, True),
        (10**9, 7, 5, 1, 2, True, False),
    ],
)
def test_page_of(requested: int, total: int, size: int, number: int, count: int, prev: bool, next_: bool) -> None:
    page = page_of(requested, total, size)
    assert (page.number, page.count, page.has_prev, page.has_next) == (number, count, prev, next_)
    assert page.offset == number * size


def test_page_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        page_of(0, 10, 0)


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("привет", 6), ("😀", 2), ("a😀b", 4), ("👨‍👩‍👧", 8), ("\u00e9", 1)],
)
def test_utf16_len_counts_like_telegram(text: str, units: int) -> None:
    assert utf16_len(text) == units


def test_limits_are_telegrams() -> None:
    assert (TEXT_LIMIT, CAPTION_LIMIT) == (4096, 1024)


def test_content_hash_identity() -> None:
    bold = [{"type": "bold", "offset": 0, "length": 2}]
    base = content_hash("text", "hi", bold, None)
    assert base == content_hash("text", "hi", [{"length": 2, "offset": 0, "type": "bold"}], None)  # key order
    assert base != content_hash("text", "hi", [], None)  # formatting is part of the message
    assert base != content_hash("text", "hi ", bold, None)
    assert content_hash("photo", "c", [], "aa") != content_hash("photo", "c", [], "bb")  # other picture
    assert content_hash("photo", "c", [], "aa") != content_hash("video", "c", [], "aa")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("short", 10, "short"), ("a  b\n\nc", 10, "a b c"), ("abcdefghij", 10, "abcdefghij"),
     ("abcdefghijk", 10, "abcdefghi…"), ("abcd efghijk", 6, "abcd…")],
)
def test_preview(text: str, limit: int, expected: str) -> None:
    assert preview(text, limit) == expected
    assert len(preview(text, limit)) <= limit
