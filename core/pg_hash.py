"""PostgreSQL's `hashint8extended(value, seed)` in Python: the same 64-bit result, bit for bit.

The tick derives every delivery's `random_id` from this hash inside its INSERT (db/tick.py), because it is
built into PostgreSQL and costs a fraction of a microsecond a row, where the SHA-256 of a formatted string
cost ~1.3 µs (a tenth of the tick's statement at 20,000 rows). Python needs the same function to state the
formula (core.schedule.random_id) and to test it against the server (tests/test_pg_hash.py). PostgreSQL
keeps this function stable across releases: hash partitioning stores rows by it.

The algorithm is Bob Jenkins' lookup3 as PostgreSQL's src/common/hashfn.c has it (`hash_bytes_uint32_extended`),
after folding the 64-bit value to 32 bits the way `hashint8` does.
"""

from __future__ import annotations

_MASK32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _MASK32; a ^= _rot(c, 4); c = (c + b) & _MASK32  # noqa: E702
    b = (b - a) & _MASK32; b ^= _rot(a, 6); a = (a + c) & _MASK32  # noqa: E702
    c = (c - b) & _MASK32; c ^= _rot(b, 8); b = (b + a) & _MASK32  # noqa: E702
    a = (a - c) & _MASK32; a ^= _rot(c, 16); c = (c + b) & _MASK32  # noqa: E702
    b = (b - a) & _MASK32; b ^= _rot(a, 19); a = (a + c) & _MASK32  # noqa: E702
    c = (c - b) & _MASK32; c ^= _rot(b, 4); b = (b + a) & _MASK32  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> tuple[int, int, int]:
    c ^= b; c = (c - _rot(b, 14)) & _MASK32  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & _MASK32  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & _MASK32  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & _MASK32  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & _MASK32  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & _MASK32  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & _MASK32  # noqa: E702
    return a, b, c


def hashint8extended(value: int, seed: int) -> int:
    """`SELECT hashint8extended(value, seed)`: both arguments and the result are signed 64-bit."""
    unsigned = value & 0xFFFFFFFFFFFFFFFF
    lohalf, hihalf = unsigned & _MASK32, unsigned >> 32
    lohalf ^= hihalf if value >= 0 else ~hihalf & _MASK32
    seed &= 0xFFFFFFFFFFFFFFFF
    a = b = c = (0x9E3779B9 + 4 + 3923095) & _MASK32
    if seed:
        a = (a + (seed >> 32)) & _MASK32
        b = (b + (seed & _MASK32)) & _MASK32
        a, b, c = _mix(a, b, c)
    a = (a + lohalf) & _MASK32
    a, b, c = _final(a, b, c)
    result = (b << 32) | c
    return result - (1 << 64) if result >= 1 << 63 else result
