"""Bar charts, pure Python: one layout, drawn two ways.

The layout: bars evenly spaced on a baseline, scaled so the tallest fills the plot. It is drawn as a
PNG (zlib + struct) for the admin's statistics photo — Telegram's sendPhoto takes raster images only —
with its axes labelled (counts up the side, hours and dates along the bottom, in a small built-in
pixel font of digits and a few letters: the words go in the translated caption), and as inline SVG
for the operator page (/ops), with stacked series, a tooltip per bar and labels under some bars.
Grayscale+palette would make a smaller PNG; plain RGB keeps it obvious.
"""

from __future__ import annotations

import html
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

BACKGROUND = (255, 255, 255)
BAR = (52, 120, 246)
AXIS = (90, 90, 90)
TEXT = (60, 60, 60)

# A 3×5 pixel font, drawn twice its size: what axis labels need (numbers, times, dates, "UTC").
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ":": "000010000010000", "-": "000000111000000",
    ".": "000000000000010", "/": "001001010100100", "h": "100100111101101", "U": "101101101101111",
    "T": "111010010010010", "C": "111100100100111", " ": "000000000000000",
}
_SCALE = 2
_ADVANCE = 4 * _SCALE  # a glyph and a column of space
_LINE = 5 * _SCALE


def text_width(text: str) -> int:
    return len(text) * _ADVANCE - _SCALE if text else 0


def _draw_text(canvas: list[bytearray], x: int, y: int, text: str, colour: bytes = bytes(TEXT)) -> None:
    """`text` with its top-left corner at (x, y); characters without a glyph are left blank."""
    for n, char in enumerate(text):
        glyph = _GLYPHS.get(char, _GLYPHS[" "])
        for i, bit in enumerate(glyph):
            if bit == "1":
                for dy in range(_SCALE):
                    row = canvas[y + (i // 3) * _SCALE + dy]
                    left = x + n * _ADVANCE + (i % 3) * _SCALE
                    row[left * 3:(left + _SCALE) * 3] = colour * _SCALE


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


@dataclass(frozen=True, slots=True)
class Layout:
    """Bar i stands at `x(i)`, `width` wide; a value is `height(value)` tall, the tallest bar (`top`)
    filling the `plot` height."""

    left: float
    step: float
    width: float
    plot: float
    top: int

    def x(self, i: int) -> float:
        return self.left + i * self.step

    def height(self, value: int) -> float:
        return self.plot * value / self.top if self.top > 0 else 0.0


def bar_heights(values: Sequence[int], plot_height: int) -> list[int]:
    """Each value scaled to the tallest (which fills the plot), in whole pixels; any non-zero value
    is at least 1 px."""
    layout = Layout(0, 0, 0, plot_height, max(values, default=0))
    return [max(1, round(layout.height(v))) if v > 0 else 0 for v in values]


def bar_chart(values: Sequence[int], *, bar_width: int = 16, gap: int = 4, height: int = 160,
              margin: int = 10, x_labels: Sequence[str] = (), x_notes: Sequence[str] = (),
              corner: str = "") -> bytes:
    """The PNG: one series. Without labels, bars only. With `x_labels` (one per bar, "" for none),
    the axes are labelled: the counts 0, half the top and the top up a y axis, the labels under their
    bars, `x_notes` (dates, say) on a second row, and `corner` ("UTC") at the right end of it. A label
    that would overlap the one before it is left out; one that would run off the right edge ends there."""
    if not values:
        raise ValueError("nothing to draw")
    labelled = bool(x_labels or x_notes)
    top = max(values)
    ticks = sorted({0, top // 2, top}) if labelled else []
    left = margin + (max(text_width(str(t)) for t in ticks) + 6 if labelled else 0)
    below = (_LINE + 4) * 2 if labelled else 0
    width = left + margin + len(values) * (bar_width + gap) - gap
    plot = height - below - margin * 2 - 1  # one row for the baseline
    layout = Layout(left, bar_width + gap, bar_width, plot, top)
    heights = bar_heights(values, plot)
    baseline = height - below - margin - 1
    bg, bar, axis = bytes(BACKGROUND), bytes(BAR), bytes(AXIS)
    canvas = [bytearray(bg * width) for _ in range(height)]
    canvas[baseline][left * 3:(width - margin) * 3] = axis * (width - margin - left)
    for i, h in enumerate(heights):
        x = int(layout.x(i))
        for y in range(baseline - h, baseline):
            canvas[y][x * 3:(x + bar_width) * 3] = bar * bar_width
    if labelled:
        for y in range(margin, baseline):  # the y axis, with a tick and the count at 0, half, top
            canvas[y][(left - 2) * 3:(left - 1) * 3] = axis
        for t in ticks:
            y = baseline - (round(layout.height(t)) if t else 0)
            canvas[y][(left - 5) * 3:(left - 1) * 3] = axis * 4
            _draw_text(canvas, left - 6 - text_width(str(t)), min(max(y - _LINE // 2, 0), baseline - _LINE),
                       str(t))
        corner_x = width - margin - text_width(corner)
        if corner:
            _draw_text(canvas, corner_x, baseline + 4 + _LINE + 4, corner)
        for row, labels in enumerate((x_labels, x_notes)):
            y, free = baseline + 4 + row * (_LINE + 4), 0
            end = corner_x - _ADVANCE if row and corner else width - margin
            for i, label in enumerate(labels):
                x = min(int(layout.x(i)), end - text_width(label))  # the last bars' labels end at the edge
                if label and x >= free:
                    _draw_text(canvas, x, y, label)
                    free = x + text_width(label) + _ADVANCE
    return encode_png(width, height, [bytes(r) for r in canvas])


@dataclass(frozen=True, slots=True)
class Column:
    """One bar of the SVG chart: a value per series (stacked from the baseline up, in the order the
    series are given), its tooltip, and an optional label under it."""

    values: tuple[int, ...]
    title: str
    label: str | None = None


_MUTED = "#6b7280"


def svg_bar_chart(columns: Sequence[Column], series: Sequence[tuple[str, str]], *, ident: str, title: str,
                  width: int = 960, height: int = 220) -> str:
    """The SVG: `series` are (name, colour) pairs; each bar is a `<g class="bar">` carrying its values
    as `data-<name>` attributes, so a page or a test reads the numbers without parsing geometry."""
    pad_l, pad_b, pad_t = 40, 24, 10
    plot_h = height - pad_b - pad_t
    slot = (width - pad_l) / max(len(columns), 1)
    bar_w = max(slot * 0.7, 1)
    top = max((sum(c.values) for c in columns), default=0) or 1
    layout = Layout(pad_l + (slot - bar_w) / 2, slot, bar_w, plot_h, top)
    base = pad_t + plot_h
    parts = [
        f'<svg id="{html.escape(ident)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{html.escape(title)}">',
        f'<line x1="{pad_l}" y1="{base}" x2="{width}" y2="{base}" stroke="#9aa3b2"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end" font-size="11" fill="{_MUTED}">{top}</text>',
        f'<text x="{pad_l - 6}" y="{base}" text-anchor="end" font-size="11" fill="{_MUTED}">0</text>',
    ]
    for i, column in enumerate(columns):
        x = layout.x(i)
        data = "".join(f' data-{name}="{value}"' for (name, _), value in zip(series, column.values, strict=True))
        rects, y = [], float(base)
        for (_, colour), value in zip(series, column.values, strict=True):
            h = layout.height(value)
            y -= h
            rects.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}"/>')
        parts.append(f'<g class="bar"{data}><title>{html.escape(column.title)}</title>{"".join(rects)}</g>')
        if column.label is not None:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="11" '
                         f'fill="{_MUTED}">{html.escape(column.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
