"""core.chart: the PNG it writes decodes (signature, chunk CRCs, size, pixels), bars scale, and the SVG
stacks its series on the same scale."""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from core.chart import BACKGROUND, BAR, Column, bar_chart, bar_heights, encode_png, svg_bar_chart


def decode(png: bytes) -> tuple[int, int, list[bytes]]:
    """A minimal PNG reader for 8-bit RGB, filter 0 — exactly what the renderer writes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc
        chunks.append((kind, data))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color, interlace) == (8, 2, 0)
    raw = zlib.decompress(b"".join(d for k, d in chunks if k == b"IDAT"))
    stride = width * 3 + 1
    assert len(raw) == stride * height
    rows = [raw[i * stride:(i + 1) * stride] for i in range(height)]
    assert all(r[0] == 0 for r in rows)
    return width, height, [r[1:] for r in rows]


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    return tuple(rows[y][x * 3:x * 3 + 3])  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("values", "plot", "expected"),
    [([0, 0], 10, [0, 0]), ([], 10, []), ([5, 10], 10, [5, 10]), ([1, 1000], 100, [1, 100]), ([3], 7, [7])],
)
def test_bar_heights(values, plot, expected) -> None:
    assert bar_heights(values, plot) == expected


def test_chart_decodes_with_bars_where_the_values_are() -> None:
    values = [0, 4, 8] + [0] * 21
    png = bar_chart(values, bar_width=5, gap=1, height=50, margin=5)
    width, height, rows = decode(png)
    assert (width, height) == (5 * 2 + 24 * 6 - 1, 50)
    baseline = height - 5 - 1
    top = baseline - 1  # the row just above the baseline
    assert pixel(rows, 5, top) == BACKGROUND  # value 0: no bar
    assert pixel(rows, 5 + 6, top) == BAR
    assert pixel(rows, 5 + 12, top) == BAR
    assert pixel(rows, 5 + 12, 5) == BAR  # the tallest bar fills the plot
    assert pixel(rows, 5 + 6, 5) == BACKGROUND  # half as tall
    assert pixel(rows, 5 + 5, top) == BACKGROUND  # the gap between bars
    assert pixel(rows, 0, 0) == BACKGROUND


def test_empty_day_is_a_valid_blank_chart() -> None:
    _, _, rows = decode(bar_chart([0] * 24))
    assert BAR not in {pixel(rows, x, y) for y in range(len(rows)) for x in range(len(rows[0]) // 3)}


def test_encode_png_rejects_mismatched_rows() -> None:
    with pytest.raises(ValueError):
        encode_png(2, 1, [b"\x00" * 3])
    with pytest.raises(ValueError):
        bar_chart([])


def test_svg_stacks_the_series_and_scales_to_the_tallest_total() -> None:
    columns = [Column((3, 1), "a"), Column((0, 0), "b", "02h"), Column((6, 2), "<c>")]
    svg = svg_bar_chart(columns, [("sent", "#00f"), ("failed", "#f00")], ident="x", title="t",
                        width=340, height=134)  # a 100 px plot
    bars = re.findall(r'<g class="bar" data-sent="(\d+)" data-failed="(\d+)"><title>([^<]*)</title>(.*?)</g>', svg)
    assert [(s, f, t) for s, f, t, _ in bars] == [("3", "1", "a"), ("0", "0", "b"), ("6", "2", "&lt;c&gt;")]
    heights = [[float(h) for h in re.findall(r'height="([\d.]+)"', rects)] for *_, rects in bars]
    assert heights == [[37.5, 12.5], [0.0, 0.0], [75.0, 25.0]]  # the tallest total (8) fills the plot
    tops = [[float(y) for y in re.findall(r' y="([\d.]+)"', rects)] for *_, rects in bars]
    assert tops[2] == [110.0 - 75.0, 110.0 - 100.0]  # failed sits on sent, from the baseline at y=110
    assert svg.count("<text") == 3 and ">02h</text>" in svg  # the axis's two numbers and one label


def test_png_and_svg_scale_alike() -> None:
    values = [1, 5, 10, 0]
    svg = svg_bar_chart([Column((v,), "") for v in values], [("n", "#000")], ident="x", title="t", height=134)
    svg_heights = [float(h) for h in re.findall(r'<rect[^>]* height="([\d.]+)"', svg)]
    assert [round(h) for h in svg_heights] == bar_heights(values, 100)


def _glyph_at(rows: list[bytes], x: int, y: int, char: str) -> bool:
    """Whether `char` of the built-in font is drawn with its top-left corner at (x, y), pixel for pixel."""
    from core.chart import _GLYPHS, _SCALE, TEXT

    for i, bit in enumerate(_GLYPHS[char]):
        for dy in range(_SCALE):
            for dx in range(_SCALE):
                colour = pixel(rows, x + (i % 3) * _SCALE + dx, y + (i // 3) * _SCALE + dy)
                if colour != (TEXT if bit == "1" else BACKGROUND):
                    return False
    return True


def test_labelled_axes_show_counts_hours_dates_and_utc() -> None:
    from core.chart import AXIS, text_width

    values = [0, 5, 10, 0, 0, 0]
    labels = ["21h", "", "", "00h", "", ""]
    notes = ["03-03", "", "", "03-04", "", ""]
    png = bar_chart(values, bar_width=20, gap=4, height=120, margin=10, x_labels=labels, x_notes=notes,
                    corner="UTC")
    width, height, rows = decode(png)
    left = 10 + text_width("10") + 6  # room for the widest count
    below = (10 + 4) * 2
    baseline = height - below - 10 - 1
    assert width == left + 10 + 6 * 24 - 4
    assert pixel(rows, left, baseline) == AXIS and pixel(rows, left - 2, baseline - 20) == AXIS  # both axes
    assert pixel(rows, left + 24 * 2, 10) == BAR and pixel(rows, left + 24 * 2, 9) == BACKGROUND  # 10 fills
    # Up the y axis: "10" at the top, "5" halfway, "0" at the baseline (each right-aligned on the axis).
    assert _glyph_at(rows, left - 6 - text_width("10"), 10 - 5, "1")
    plot = baseline - 10
    assert _glyph_at(rows, left - 6 - text_width("5"), baseline - round(plot / 2) - 5, "5")
    assert _glyph_at(rows, left - 6 - text_width("0"), baseline - 10, "0")  # kept above the hours' row
    # Along the bottom: the hours under their bars, the dates below them, "UTC" at the right end.
    first_row, second_row = baseline + 4, baseline + 4 + 14
    assert _glyph_at(rows, left, first_row, "2") and _glyph_at(rows, left + 8 * 2, first_row, "h")
    assert _glyph_at(rows, left + 24 * 3, first_row, "0")
    assert _glyph_at(rows, left, second_row, "0") and _glyph_at(rows, left + 8 * 2, second_row, "-")
    assert _glyph_at(rows, left + 24 * 3 + 8 * 3, second_row, "0")  # 03-04's "0" of "04"
    utc = width - 10 - text_width("UTC")
    assert [_glyph_at(rows, utc + 8 * n, second_row, c) for n, c in enumerate("UTC")] == [True] * 3


def test_a_label_that_would_overlap_the_one_before_is_left_out() -> None:
    from core.chart import text_width

    png = bar_chart([1] * 10, bar_width=10, gap=2, height=100, margin=10, x_labels=["12-31"] * 10)
    _, height, rows = decode(png)
    left = 10 + text_width("1") + 6
    y = height - 28 - 10 - 1 + 4
    drawn = [_glyph_at(rows, left + i * 12, y, "1") for i in range(10)]
    # "12-31" is 38 px wide and needs a glyph's room after it: bars 12 px apart take one label in four;
    # the ninth's would run off the right edge, and moved back to end there it would overlap the fifth.
    assert drawn == [True, False, False, False, True, False, False, False, False, False]
    from core.chart import TEXT

    after_the_fifth = {pixel(rows, x, y + dy) for x in range(left + 48 + 38, left + 128) for dy in range(10)}
    assert TEXT not in after_the_fifth


def test_the_last_bars_label_ends_at_the_right_edge() -> None:
    from core.chart import text_width

    png = bar_chart([1] * 10, bar_width=10, gap=2, height=100, margin=10, x_labels=["12-31"] + [""] * 8 + ["01-09"])
    width, height, rows = decode(png)
    assert _glyph_at(rows, width - 10 - text_width("01-09"), height - 28 - 10 - 1 + 4, "0")


def test_unlabelled_charts_are_unchanged() -> None:
    from core.chart import TEXT

    _, _, rows = decode(bar_chart([3, 0, 7]))
    assert TEXT not in {pixel(rows, x, y) for y in range(len(rows)) for x in range(len(rows[0]) // 3)}
