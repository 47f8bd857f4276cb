"""legacy.markdown: the older bot's texts as its library formatted them (pure, no I/O).

Expected values follow the libraries' parsers as written (Pyrogram 2.0.106 `parser/markdown.py`,
`parser/html.py`; gramjs 2.26 `extensions/markdown.ts`); a comment names the rule behind each
surprising one.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.content import TEXT_LIMIT, utf16_len
from legacy.markdown import Rendered, render_legacy

SENDABLE = {
    "bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link", "custom_emoji",
    "url", "mention", "hashtag", "cashtag", "bot_command", "email", "phone_number", "blockquote",
    "expandable_blockquote",
}


def ent(kind: str, offset: int, length: int, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "offset": offset, "length": length, **extra}


def rendered(text: str, *entities: dict[str, Any], dropped: tuple[str, ...] = ()) -> Rendered:
    return Rendered(text, list(entities), too_long=False, dropped=dropped)


# --- Pyrogram: Markdown and HTML together ------------------------------------------------------------

@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("**bold**", rendered("bold", ent("bold", 0, 4))),
        ("__it__", rendered("it", ent("italic", 0, 2))),
        ("--under--", rendered("under", ent("underline", 0, 5))),
        ("~~gone~~", rendered("gone", ent("strikethrough", 0, 4))),
        ("||hide||", rendered("hide", ent("spoiler", 0, 4))),
        ("`x = 1`", rendered("x = 1", ent("code", 0, 5))),
        ("a **b** c", rendered("a b c", ent("bold", 2, 1))),
        ("--u-- ||s|| ~~x~~", rendered("u s x", ent("underline", 0, 1), ent("spoiler", 2, 1),
                                         ent("strikethrough", 4, 1))),
        ("`a` `b`", rendered("a b", ent("code", 0, 1), ent("code", 2, 1))),
        ("x--y--z", rendered("xyz", ent("underline", 1, 1))),  # no word boundaries: "--" anywhere
        ("a __b\nc__ d", rendered("a b\nc d", ent("italic", 2, 3))),  # delimiters span lines
    ],
)
def test_pyrogram_markdown_constructs(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("```\ncode\n```", rendered("code", ent("pre", 0, 4))),  # no language: the key is left out
        ("```python\nprint(1)\n```", rendered("print(1)", ent("pre", 0, 8, language="python"))),
        # The language line becomes `<pre language=…>` but its newline stays; only at the very start and
        # end of the text does the blank-around-tags strip eat the newlines.
        ("a\n```py\ncode\n```\nb", rendered("a\n\ncode\n\nb", ent("pre", 2, 6, language="py"))),
        ("```py\nx\n```\n```js\ny\n```", rendered("x\n\n\ny", ent("pre", 0, 2, language="py"),
                                                    ent("pre", 3, 2, language="js"))),
        # The language runs to the end of the line, closing fence included: nothing is left to close it.
        ("``` x ```", rendered("")),
        ("```py", rendered("")),
    ],
)
def test_pyrogram_pre_blocks(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("**bold __both__**", rendered("bold both", ent("bold", 0, 9), ent("italic", 5, 4))),
        ("**a __b** c__", rendered("a b c", ent("bold", 0, 3), ent("italic", 2, 3))),  # overlap is kept
        ("***a***", rendered("*a*", ent("bold", 0, 2))),  # "**" matches first, the lone "*" is text
        ("`**x**`", rendered("**x**", ent("code", 0, 5))),  # nothing is parsed inside code
        ("`[a](b)`", rendered("[a](b)", ent("code", 0, 6))),
        # A delimiter skipped inside code is still in the text when the next one of its kind is replaced
        # from that one's original position: the replacement lands inside the code.
        ("`a**b` **c**", rendered("ab c**", ent("code", 0, 2), ent("bold", 1, 2))),
        ("<b>x<b>y</b>z</b>", rendered("xyz", ent("bold", 0, 3), ent("bold", 1, 1))),
        ("<i>a<b>b</i>c</b>", rendered("abc", ent("italic", 0, 2), ent("bold", 1, 2))),
    ],
)
def test_pyrogram_nesting(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # An unclosed delimiter still becomes an opening tag: the delimiter vanishes, no entity is made.
        ("a ** b", rendered("a  b")),
        ("`a", rendered("a")),
        ("**a** **b", rendered("a b", ent("bold", 0, 1))),
        ("<b>a", rendered("a")),
        ("a</b>", rendered("a")),  # an unmatched closing tag is ignored
        # Single characters are never delimiters.
        ("_a_ *b* ~c~ |d| -e-", rendered("_a_ *b* ~c~ |d| -e-")),
        ("1 - 2 -- 3", rendered("1 - 2  3")),
        ("****", rendered("")),  # an empty entity is dropped
        ("<b></b>x", rendered("x")),
    ],
)
def test_pyrogram_unclosed_and_stray_markers(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[site](https://example.com)", rendered("site", ent("text_link", 0, 4, url="https://example.com"))),
        ("[a](b) [c]( d )", rendered("a c", ent("text_link", 0, 1, url="b"), ent("text_link", 2, 1, url=" d "))),
        ("[a **b**](u)", rendered("a **b**", ent("text_link", 0, 7, url="u"))),  # the link swallows them
        ("**[a](u)**", rendered("a", ent("text_link", 0, 1, url="u"), ent("bold", 0, 1))),
        ("[a\nb](u)", rendered("[a\nb](u)")),  # a link stays on one line
        ("[a](u\nv)", rendered("[a](u\nv)")),
        ('[a](http://x.y/?q="z")', rendered("a", ent("text_link", 0, 1, url="http://x.y/?q="))),  # unquoted href
        # tgcast cannot send a mention of a user (no access hash): the name stays, plain.
        ('<a href="tg://user?id=5">me</a> [you](tg://user?id=6)',
         rendered("me you", dropped=("text_mention", "text_mention"))),
        ("<a>q</a>", rendered("q", dropped=("text_link",))),  # no href: an empty link, dropped
    ],
)
def test_pyrogram_links(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # Pyrogram raised on these, so the older bot never posted them: a best effort, marked refused.
        ('<emoji id="abc">👍</emoji> **b**', Rendered("👍 b", [ent("bold", 3, 1)], dropped=("custom_emoji",),
                                                      refused=True)),
        ("<emoji>👍</emoji>", Rendered("👍", [], dropped=("custom_emoji",), refused=True)),
        (f'<emoji id="{2**63}">👍</emoji>', Rendered("👍", [], dropped=("custom_emoji",), refused=True)),
        ("<a href>q</a>", Rendered("q", [], dropped=("text_link",), refused=True)),  # a bare href
        ("<emoji id=x>never closed", Rendered("never closed", [], refused=True)),  # raised on opening
        # The standard library's parser asserts on this declaration: the text is kept as typed.
        (" **a** <![x> ", Rendered("**a** <![x>", [], refused=True)),
    ],
)
def test_pyrogram_refusals(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<b>b</b><strong>s</strong>", rendered("bs", ent("bold", 0, 1), ent("bold", 1, 1))),
        ("<i>i</i><em>e</em>", rendered("ie", ent("italic", 0, 1), ent("italic", 1, 1))),
        ("<u>u</u>", rendered("u", ent("underline", 0, 1))),
        ("<s>1</s><del>2</del><strike>3</strike>", rendered("123", ent("strikethrough", 0, 1),
                                                             ent("strikethrough", 1, 1), ent("strikethrough", 2, 1))),
        ("<code>c</code>", rendered("c", ent("code", 0, 1))),
        ('<pre language="py">x</pre>', rendered("x", ent("pre", 0, 1, language="py"))),
        ("<pre>x</pre>y", rendered("xy", ent("pre", 0, 1))),
        ("<pre language>x</pre>", rendered("x", ent("pre", 0, 1))),
        ("<a href='x'>q</a>", rendered("q", ent("text_link", 0, 1, url="x"))),
        ("<spoiler>s</spoiler>", rendered("s", ent("spoiler", 0, 1))),
        ("<tg-spoiler>s</tg-spoiler>", rendered("s")),  # not a tag Pyrogram 2.0.106 knows
        ("<blockquote>q</blockquote>", rendered("q", ent("blockquote", 0, 1))),
        ('<emoji id="5368324170671202286">👍</emoji>',
         rendered("👍", ent("custom_emoji", 0, 2, custom_emoji_id="5368324170671202286"))),
        ("<B>x</B>", rendered("x", ent("bold", 0, 1))),  # tag names are case-blind
        ("<br>a<br/>b", rendered("ab")),  # unknown tags vanish, their text stays
    ],
)
def test_pyrogram_html_tags(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("&lt;b&gt;x&lt;/b&gt;", rendered("<b>x</b>")),  # escaped tags are text
        ("Tom &amp; Jerry", rendered("Tom & Jerry")),
        ("&amp;lt;b&amp;gt;", rendered("<b>")),  # unescaped twice: by the parser, then by Pyrogram
        ("a < b > c", rendered("a < b > c")),
        ("a<b", rendered("a<b")),
        ("\\*\\*a\\*\\*", rendered("\\*\\*a\\*\\*")),  # no backslash escapes: nothing to escape here
    ],
)
def test_pyrogram_escapes(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("😀 **b**", rendered("😀 b", ent("bold", 3, 1))),  # the emoji takes two UTF-16 units
        ("**😀**", rendered("😀", ent("bold", 0, 2))),
        ("𝔸 __𝔹__ 😀 `c`", rendered("𝔸 𝔹 😀 c", ent("italic", 3, 2), ent("code", 9, 1))),
        # A character produced by unescaping is counted as one unit: Pyrogram sent the bold one unit
        # early (over the space), and Telegram drew it there.
        ("&#128512; **b**", rendered("😀 b", ent("bold", 2, 1))),
    ],
)
def test_pyrogram_counts_utf16_units(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("  **a**  \n", rendered("a", ent("bold", 0, 1))),
        ("<b> a </b>", rendered("a", ent("bold", 0, 1))),  # blanks inside a leading/trailing tag go too
        ("x <b> a </b> y", rendered("x  a  y", ent("bold", 2, 3))),  # but not in the middle
        ("a\u00a0**b**\u00a0", rendered("a\u00a0b", ent("bold", 2, 1))),  # str.strip: Unicode blanks too
        ("__a__\u2003", rendered("a", ent("italic", 0, 1))),
        ("", rendered("")),
        (" \n\t ", rendered("")),
    ],
)
def test_pyrogram_strips(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "pyrogram") == expected


def test_pyrogram_quirk_link_before_fence() -> None:
    # The language is read from the first "```" left anywhere in the text — here the one in the link,
    # so the replacement misses and the fence's text is lost with it. What Pyrogram sent is kept.
    assert render_legacy("[```](u) ```py\nx```", "pyrogram") == rendered("\nx```")


# --- gramjs: its MarkdownParser ------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("**bold**", rendered("bold", ent("bold", 0, 4))),
        ("__it__", rendered("it", ent("italic", 0, 2))),
        ("~~gone~~", rendered("gone", ent("strikethrough", 0, 4))),
        ("`x = 1`", rendered("x = 1", ent("code", 0, 5))),
        ("a **b** c", rendered("a b c", ent("bold", 2, 1))),
        ("**a __b__**", rendered("a b", ent("bold", 0, 3), ent("italic", 2, 1))),
        ("__a**b__c**", rendered("abc", ent("italic", 0, 2), ent("bold", 1, 2))),  # overlap is kept
        ("`a**b`**", rendered("ab", ent("code", 0, 2), ent("bold", 1, 1))),  # code does not protect
        ("***a***", rendered("*a*", ent("bold", 0, 2))),
        # Not part of this dialect: stay as typed.
        ("--u-- ||s|| [a](b) <b>x</b> &amp;", rendered("--u-- ||s|| [a](b) <b>x</b> &amp;")),
        ("_a_ *b*", rendered("_a_ *b*")),
    ],
)
def test_gramjs_constructs(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "gramjs") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # "`" precedes "```" in the delimiter table and is found at the same index, so a fence is three
        # code delimiters: two empty code entities (dropped) and one around the body, language included.
        ("```x```", rendered("x", ent("code", 0, 1))),
        ("```python\nprint(1)\n```", rendered("python\nprint(1)\n", ent("code", 0, 16))),
    ],
)
def test_gramjs_fences_are_code(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "gramjs") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a **b", rendered("a b")),  # every delimiter is removed, closed or not
        ("**a** **b", rendered("a b", ent("bold", 0, 1))),
        ("****", rendered("")),  # gramjs sends an empty entity; it is dropped
        ("\\**a**", rendered("\\a", ent("bold", 1, 1))),  # no escapes
        # Removal takes the first occurrence in the whole text: here the "**" that removing "`" made
        # at the start, so the bold lands one unit right of where the scan found it.
        ("*`*a**b**", rendered("ab**", ent("bold", 3, 1))),
    ],
)
def test_gramjs_unclosed_and_quirks(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "gramjs") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("😀**a**", rendered("😀a", ent("bold", 2, 1))),  # JavaScript strings are UTF-16
        ("**😀** 𝔸 `b`", rendered("😀 𝔸 b", ent("bold", 0, 2), ent("code", 6, 1))),
        ("  **a**  ", rendered("  a  ", ent("bold", 2, 1))),  # gramjs does not strip
        ("", rendered("")),
    ],
)
def test_gramjs_units_and_blanks(source: str, expected: Rendered) -> None:
    assert render_legacy(source, "gramjs") == expected


# --- both ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", ["pyrogram", "gramjs"])
def test_limit_is_flagged_not_cut(dialect: Any) -> None:
    at = render_legacy("**" + "a" * TEXT_LIMIT + "**", dialect)
    assert (utf16_len(at.text), at.too_long) == (TEXT_LIMIT, False)
    over = render_legacy("a" * (TEXT_LIMIT + 1), dialect)
    assert (utf16_len(over.text), over.too_long) == (TEXT_LIMIT + 1, True)
    # counted in UTF-16 units, not characters
    emoji = render_legacy("😀" * (TEXT_LIMIT // 2), dialect)
    assert (len(emoji.text), emoji.too_long) == (TEXT_LIMIT // 2, False)
    assert render_legacy("😀" * (TEXT_LIMIT // 2) + "a", dialect).too_long


def test_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="dialect"):
        render_legacy("x", "telethon")  # type: ignore[arg-type]


_PLAIN_ALPHABET = st.characters(exclude_characters="*_~`-|[<&", exclude_categories=["Cs"])
_MARKUP = st.sampled_from([
    "**", "__", "--", "~~", "||", "`", "```", "```py\n", "[", "]", "(", ")", "[t](http://x.y)", "<b>", "</b>",
    "<i>", "</i>", '<pre language="c">', "</pre>", '<a href="u">', "</a>", "&amp;", "&lt;", "&#128512;", "<",
    ">", " ", "\n", "a", "😀", "𝔸", "*", "_", "~", "|", "-", '<emoji id="7">', "</emoji>", '<a href="tg://user?id=1">',
    "<emoji id=x>", "<a href>", "<![", "<!--", "-->",
])


@given(st.text(_PLAIN_ALPHABET).map(str.strip))
def test_pyrogram_plain_text_is_itself(text: str) -> None:
    assert render_legacy(text, "pyrogram") == rendered(text)


@given(st.text(st.characters(exclude_characters="*_~`", exclude_categories=["Cs"])))
def test_gramjs_plain_text_is_itself(text: str) -> None:
    assert render_legacy(text, "gramjs") == rendered(text)


@given(st.lists(_MARKUP | st.text(max_size=3), max_size=30).map("".join), st.sampled_from(["pyrogram", "gramjs"]))
def test_entities_are_sendable_sorted_and_inside_the_text(text: str, dialect: Any) -> None:
    result = render_legacy(text, dialect)
    units = utf16_len(result.text)
    for entity in result.entities:
        assert entity["type"] in SENDABLE
        assert entity["length"] > 0 and entity["offset"] >= 0
        assert entity["offset"] + entity["length"] <= units
    keys = [(e["offset"], -e["length"]) for e in result.entities]
    assert keys == sorted(keys)
    assert result.too_long == (units > TEXT_LIMIT)
    assert set(result.dropped) <= {"text_mention", "text_link", "custom_emoji"}
    assert not (dialect == "gramjs" and (result.dropped or result.refused))
