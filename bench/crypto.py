"""Telethon's AES-256-IGE (every MTProto message is encrypted with it) with each backend it can use,
side by side in one run: `python -m bench.crypto`.

Telethon picks, at import, cryptg if installed, else OpenSSL's libcrypto through ctypes if found, else
pyaes (pure Python). This calls Telethon's own `AES.encrypt_ige`/`decrypt_ige` with the choice forced
each way, on message sizes tgcast sends: acks and pings, posts (a 4096-character text with entities
is ~10-16 KB on the wire) and 512 KB upload parts of a photo or video.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from importlib import metadata

from telethon.crypto import aes as tl_aes
from telethon.crypto import libssl

try:
    import cryptg
except ImportError:  # the table says so
    cryptg = None  # type: ignore[assignment]

SIZES = [("ack/ping", 64), ("short post", 1024), ("long post", 16 * 1024), ("upload part", 512 * 1024)]
BACKENDS = ["pyaes", "libssl", "cryptg"]
_BUDGET_S = 0.25  # time per measurement; each cell is the median of five
_ROUNDS = 5


@contextmanager
def backend(name: str) -> Iterator[bool]:
    """Force Telethon's AES onto one backend; yields whether that backend is available here."""
    saved = (tl_aes.cryptg, libssl.encrypt_ige, libssl.decrypt_ige)
    available = {"pyaes": True, "libssl": saved[1] is not None, "cryptg": cryptg is not None}[name]
    tl_aes.cryptg = cryptg if name == "cryptg" else None
    if name == "pyaes":
        libssl.encrypt_ige = libssl.decrypt_ige = None
    try:
        yield available
    finally:
        tl_aes.cryptg, libssl.encrypt_ige, libssl.decrypt_ige = saved


def _per_call_s(fn: Callable[[], object]) -> float:
    fn()
    rounds = []
    for _ in range(_ROUNDS):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < _BUDGET_S / _ROUNDS:
            fn()
            calls += 1
        rounds.append(elapsed / calls)
    return statistics.median(rounds)


def _round_trip(plain: bytes, key: bytes, iv: bytes) -> bytes:
    return bytes(tl_aes.AES.decrypt_ige(tl_aes.AES.encrypt_ige(plain, key, iv), key, iv))


def measure() -> dict[tuple[str, int], float | None]:
    """Seconds per encrypt+decrypt round trip, by (backend, size); None where a backend is missing."""
    key, iv = os.urandom(32), os.urandom(32)
    results: dict[tuple[str, int], float | None] = {}
    for _, size in SIZES:
        plain = os.urandom(size)  # a multiple of 16: no random padding, so every backend must agree
        expected: bytes | None = None
        for name in BACKENDS:
            with backend(name) as available:
                if not available:
                    results[name, size] = None
                    continue
                cipher = tl_aes.AES.encrypt_ige(plain, key, iv)
                if expected is not None and cipher != expected:
                    raise AssertionError(f"{name} disagrees with the other backends at {size} bytes")
                expected = cipher
                if tl_aes.AES.decrypt_ige(cipher, key, iv) != plain:
                    raise AssertionError(f"{name} does not decrypt its own output")
                results[name, size] = _per_call_s(partial(_round_trip, plain, key, iv))
    return results


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "not installed"
    return f"{seconds * 1e6:,.1f} µs" if seconds < 0.01 else f"{seconds * 1e3:,.1f} ms"


def _ratio(slow: float | None, fast: float | None) -> str:
    return f"{slow / fast:,.1f}×" if slow and fast else "–"


def table(results: dict[tuple[str, int], float | None]) -> str:
    lines = [
        "| message | size | pyaes | libssl (ctypes) | cryptg | cryptg vs libssl | cryptg vs pyaes |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, size in SIZES:
        p, s, c = (results[name, size] for name in BACKENDS)
        lines.append(f"| {label} | {size:,} B | {_fmt(p)} | {_fmt(s)} | {_fmt(c)} | {_ratio(s, c)} | {_ratio(p, c)} |")
    return "\n".join(lines)


def main() -> int:
    chosen = "cryptg" if cryptg is not None else "libssl" if libssl.encrypt_ige else "pyaes"
    version = metadata.version("cryptg") if cryptg is not None else "–"
    print(f"Telethon's choice here: {chosen} (cryptg {version}); one encrypt + decrypt per cell, median of 5")
    print(table(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
