"""Phone numbers and login codes as people type them, reduced to what Telegram expects."""

from __future__ import annotations

import re

# What people put between digits: spaces (incl. no-break), dashes, dots, brackets.
_SEPARATORS = re.compile(r"[\s\-.()\u00a0\u2010-\u2015]")
_PHONE_DIGITS = (10, 15)
_CODE_DIGITS = (4, 8)


def normalize_phone(text: str | None) -> str | None:
    """'+998 (90) 123-45-67', '00998901234567', '998901234567' → '+998901234567'; None if not a phone."""
    if not text:
        return None
    compact = _SEPARATORS.sub("", text.strip())
    had_plus = compact.startswith("+")
    digits = compact[1:] if had_plus else compact
    if not digits.isascii() or not digits.isdigit():
        return None
    if not had_plus and digits.startswith("00"):
        digits = digits[2:]  # the international call prefix many countries dial instead of "+"
    low, high = _PHONE_DIGITS
    if not low <= len(digits) <= high or digits.startswith("0"):
        return None
    return "+" + digits


def normalize_code(text: str | None) -> str | None:
    """'1 2 3 4 5', '12-345' → '12345'; None when it is not a login code."""
    if not text:
        return None
    digits = _SEPARATORS.sub("", text.strip())
    if not digits.isascii() or not digits.isdigit():
        return None
    low, high = _CODE_DIGITS
    return digits if low <= len(digits) <= high else None


def looks_like_code(text: str | None) -> bool:
    """A bare 4..8 digit message: someone typing a login code outside the login flow."""
    stripped = (text or "").strip()
    return stripped.isascii() and stripped.isdigit() and 4 <= len(stripped) <= 8


def mask_phone(phone: str) -> str:
    """'+998901234567' → '+998*******67': enough to recognise one's own number, not to read it."""
    digits = phone.lstrip("+")
    if len(digits) <= 5:
        return "+" + "*" * len(digits)
    return "+" + digits[:3] + "*" * (len(digits) - 5) + digits[-2:]
