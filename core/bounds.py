"""The ranges of the numbers that arrive as text: callback data and command arguments.

Both are user input (callback data can be forged). A number outside its column's range makes psycopg
raise in the middle of a handler, and one inside it but meaningless (a user id of 0 or -5) would let
an admin action create a row for someone who does not exist. So each kind of number has one range
here, and input outside it is treated like input that is no number at all: a button does not parse
(the "outdated button" answer), a command gets its usage text.
"""

from __future__ import annotations

from dataclasses import dataclass

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # PostgreSQL INTEGER
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # PostgreSQL BIGINT; Telegram's user and chat ids
MAX_DIGITS = len(str(INT64_MAX))  # longer input is outside every range: not even converted


@dataclass(frozen=True, slots=True)
class Bound:
    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high


USER_ID = Bound(1, INT64_MAX)  # Telegram user ids are positive
ROW_ID = Bound(1, INT64_MAX)  # BIGSERIAL keys (history entries)
CHAT_ID = Bound(INT64_MIN, INT64_MAX)  # groups and channels have negative ids
PAGE = Bound(INT32_MIN, INT32_MAX)  # a forged page inside it is clamped to the real ones (core.paging)
GRANT_DAYS = Bound(1, 36500)
INTERVAL_MINUTES = Bound(INT32_MIN, INT32_MAX)  # the buttons carry presets; a forged one in it: 'presets only'


def parse_int(text: str, bound: Bound) -> int | None:
    """A decimal integer as people (and `CallbackData.pack`) write it, ASCII digits after an optional
    minus, within `bound`; None for anything else: other scripts' digits (which int() would read),
    '+5', '1_000', '5.0', ' 5', and numbers outside the range."""
    digits = text[1:] if text.startswith("-") else text
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > MAX_DIGITS:
        return None
    value = int(text)
    return value if value in bound else None
