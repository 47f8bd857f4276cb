"""Telegram HTML ⇄ text + entities (UTF-16 offsets), as the sandbox parses and draws messages."""

from __future__ import annotations

import pytest

from core.content import utf16_len
from sandbox.entities import MarkupError, parse_html, render_html


@pytest.mark.parametrize(
    ("markup", "text", "entities"),
    [
        ("plain", "plain", []),
        ("<b>bold</b>", "bold", [{"type": "bold", "offset": 0, "length": 4}]),
        ("<strong>x</strong><em>y</em><ins>z</ins><del>w</del>", "xyzw", [
            {"type": "bold", "offset": 0, "length": 1}, {"type": "italic", "offset": 1, "length": 1},
            {"type": "underline", "offset": 2, "length": 1}, {"type": "strikethrough", "offset": 3, "length": 1}]),
        # An emoji is two UTF-16 code units: the bold after it starts at 3, not 2.
        ("😀 <b>hi</b>", "😀 hi", [{"type": "bold", "offset": 3, "length": 2}]),
        ("<b>a <i>b</i></b>", "a b", [{"type": "bold", "offset": 0, "length": 3},
                                      {"type": "italic", "offset": 2, "length": 1}]),
        ('<a href="https://example.com">site</a>', "site",
         [{"type": "text_link", "url": "https://example.com", "offset": 0, "length": 4}]),
        ('<a href="tg://user?id=42">him</a>', "him",
         [{"type": "text_mention", "user": {"id": 42, "is_bot": False, "first_name": ""}, "offset": 0, "length": 3}]),
        ("<tg-spoiler>s</tg-spoiler>", "s", [{"type": "spoiler", "offset": 0, "length": 1}]),
        ('<span class="tg-spoiler">s</span>', "s", [{"type": "spoiler", "offset": 0, "length": 1}]),
        ("<code>c</code>", "c", [{"type": "code", "offset": 0, "length": 1}]),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1",
         [{"type": "pre", "language": "python", "offset": 0, "length": 5}]),
        ("<blockquote>q</blockquote>", "q", [{"type": "blockquote", "offset": 0, "length": 1}]),
        ("<blockquote expandable>q</blockquote>", "q", [{"type": "expandable_blockquote", "offset": 0, "length": 1}]),
        ('<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>', "👍",
         [{"type": "custom_emoji", "custom_emoji_id": "5368324170671202286", "offset": 0, "length": 2}]),
        ("a &lt;b&gt; &amp; c", "a <b> & c", []),
        ("3 < 5", "3 < 5", []),
        ("<b></b>empty", "empty", []),
        ("line1\n<b>line2</b>", "line1\nline2", [{"type": "bold", "offset": 6, "length": 5}]),
    ],
)
def test_parse_html(markup: str, text: str, entities: list[dict]) -> None:
    assert parse_html(markup) == (text, entities)


@pytest.mark.parametrize("markup", ["<b>open", "<b>x</i>", "x</b>", "<div>x</div>", '<a>no href</a>',
                                    "<span>x</span>", '<tg-emoji emoji-id="x">y</tg-emoji>'])
def test_markup_telegram_would_refuse(markup: str) -> None:
    with pytest.raises(MarkupError):
        parse_html(markup)


def test_utf16_len_counts_surrogate_pairs() -> None:
    assert (utf16_len("abc"), utf16_len("😀"), utf16_len("ўзбек")) == (3, 2, 5)


@pytest.mark.parametrize(
    ("text", "entities", "html"),
    [
        ("<script>", [], "&lt;script&gt;"),
        ("bold", [{"type": "bold", "offset": 0, "length": 4}], "<b>bold</b>"),
        ("😀 hi", [{"type": "bold", "offset": 3, "length": 2}], "😀 <b>hi</b>"),
        # Overlapping entities are closed and reopened, so the HTML stays well-nested.
        ("abcdef", [{"type": "bold", "offset": 0, "length": 4}, {"type": "italic", "offset": 2, "length": 4}],
         "<b>ab<i>cd</i></b><i>ef</i>"),
        ("x", [{"type": "spoiler", "offset": 0, "length": 1}], '<span class="tg-spoiler">x</span>'),
        ("go", [{"type": "text_link", "offset": 0, "length": 2, "url": "https://a.b/?q=\"1\""}],
         '<a href="https://a.b/?q=&quot;1&quot;" target="_blank" rel="noopener noreferrer">go</a>'),
        # Only safe schemes become links: no javascript: URL ever reaches the page.
        ("go", [{"type": "text_link", "offset": 0, "length": 2, "url": "javascript:alert(1)"}],
         '<span class="tg-text_link">go</span>'),
        ("@bob", [{"type": "mention", "offset": 0, "length": 4}], '<span class="tg-mention">@bob</span>'),
        ("ab", [{"type": "bold", "offset": 5, "length": 2}, {"type": "bold"}], "ab"),
        # An entity edge inside a surrogate pair moves to the next character: no tag splits the emoji.
        ("😀a", [{"type": "bold", "offset": 1, "length": 2}], "😀<b>a</b>"),
    ],
)
def test_render_html(text: str, entities: list[dict], html: str) -> None:
    assert render_html(text, entities) == html


@pytest.mark.parametrize("markup", ["<b>a <i>b</i> c</b>", "😀 <u>x</u> <s>y <code>z</code></s>",
                                    '<a href="https://e.com">l</a> &amp; <tg-spoiler>s</tg-spoiler>'])
def test_render_after_parse_round_trips(markup: str) -> None:
    text, entities = parse_html(markup)
    assert parse_html(render_html(text, entities).replace(' target="_blank" rel="noopener noreferrer"', "")
                      .replace('<span class="tg-spoiler">', "<tg-spoiler>").replace("</span>", "</tg-spoiler>")) \
        == (text, entities)
