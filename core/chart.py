"""A tiny PNG bar chart (pure Python: zlib + struct), for the admin's statistics photo.

Enough for "sends per hour over 24 h": bars scaled to the tallest, a baseline, no text (the caption
and the message carry the numbers). Grayscale+palette would be smaller; plain RGB keeps it obvious.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

BACKGROUND = (255, 255, 255)
BAR = (52, 120, 246)
AXIS = (90, 90, 90)


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """8-bit RGB, one filter byte (0: none) per scanline."""
    if width < 1 or height < 1 or len(rows) != height or any(len(r) != width * 3 for r in rows):
        raise ValueError("rows do not match the size")
    raw = b"".join(b"\x00" + r for r in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def bar_heights(values: Sequence[int], plot_height: int) -> list[int]:
    """Each value scaled to the tallest (which fills the plot); any non-zero value is at least 1 px."""
    top = max(values, default=0)
    if top <= 0:
        return [0] * len(values)
    return [max(1, round(v * plot_height / top)) if v > 0 else 0 for v in values]


def bar_chart(values: Sequence[int], *, bar_width: int = 16, gap: int = 4, height: int = 160,
              margin: int = 10) -> bytes:
    if not values:
        raise ValueError("nothing to draw")
    width = margin * 2 + len(values) * (bar_width + gap) - gap
    plot = height - margin * 2 - 1  # one row for the baseline
    heights = bar_heights(values, plot)
    baseline = height - margin - 1
    bg, bar, axis = bytes(BACKGROUND), bytes(BAR), bytes(AXIS)
    rows = []
    for y in range(height):
        if y == baseline:
            rows.append(bg * margin + axis * (width - 2 * margin) + bg * margin)
            continue
        line = bytearray(bg * width)
        if margin <= y < baseline:
            level = baseline - y  # 1 just above the baseline
            for i, h in enumerate(heights):
                if h >= level:
                    x = margin + i * (bar_width + gap)
                    line[x * 3:(x + bar_width) * 3] = bar * bar_width
        rows.append(bytes(line))
    return encode_png(width, height, rows)
