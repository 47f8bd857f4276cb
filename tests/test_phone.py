"""Phone and code normalisation: pure table tests."""

from __future__ import annotations

import pytest

from core.phone import looks_like_code, mask_phone, normalize_code, normalize_phone


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("+998901234567", "+998901234567"),
        ("998901234567", "+998901234567"),
        ("00998901234567", "+998901234567"),
        ("+998 90 123 45 67", "+998901234567"),
        ("+998-90-123-45-67", "+998901234567"),
        ("+998 (90) 123-45-67", "+998901234567"),
        ("  +7 (912) 345.67.89  ", "+79123456789"),
        ("+1 202 555 0100", "+12025550100"),
        ("+44\u00a020\u00a07946\u00a00958", "+442079460958"),
        ("4915123456789", "+4915123456789"),
        ("+123456789012345", "+123456789012345"),  # 15 digits: the longest allowed
        ("1234567890", "+1234567890"),  # 10 digits: the shortest allowed
        ("+123456789", None),  # 9 digits
        ("+1234567890123456", None),  # 16 digits
        ("0012345", None),  # too short once 00 is dropped
        ("+00998901234567", None),  # "+" then a 0: no country code starts with 0
        ("0901234567", None),  # a national number without country code
        ("", None),
        (None, None),
        ("   ", None),
        ("+", None),
        ("phone", None),
        ("+998 90 123 45 6a", None),
        ("+998+901234567", None),
        ("٩٩٨٩٠١٢٣٤٥٦٧", None),  # non-ASCII digits are not accepted silently
    ],
)
def test_normalize_phone(typed: str | None, expected: str | None) -> None:
    assert normalize_phone(typed) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("12345", "12345"),
        ("1 2 3 4 5", "12345"),
        ("12-345", "12345"),
        (" 1-2 3.4 5 ", "12345"),
        ("123456", "123456"),
        ("1234", "1234"),
        ("12345678", "12345678"),
        ("123", None),
        ("123456789", None),
        ("", None),
        (None, None),
        ("  ", None),
        ("12a45", None),
        ("code 12345", None),
        ("١٢٣٤٥", None),
    ],
)
def test_normalize_code(typed: str | None, expected: str | None) -> None:
    assert normalize_code(typed) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1234", True), ("12345678", True), (" 54321 ", True), ("123", False), ("123456789", False),
     ("1 2 3 4 5", False), ("hello", False), ("", False), (None, False)],
)
def test_looks_like_code(text: str | None, expected: bool) -> None:
    assert looks_like_code(text) is expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [("+998901234567", "+998*******67"), ("+12025550100", "+120******00"), ("+123", "+***")],
)
def test_mask_phone(phone: str, expected: str) -> None:
    assert mask_phone(phone) == expected
    assert phone[4:-2] not in mask_phone(phone) or len(phone) <= 6
