"""Pyrogram 2.0.106's default parse mode (`ParseMode.DEFAULT`): Markdown rewritten into HTML, then HTML.

A replica, quirks included, because the older bot's messages looked the way these passes left them.
The Markdown pass (`parser/markdown.py`) rewrites delimiters into tags by position, see
`_markdown_to_html`. In the HTML pass (`parser/html.py`) tags are read by the standard library's
`HTMLParser`, as Pyrogram does; text is unescaped a second time after the parser already did;
entities still open at the end are dropped while their text stays; unknown tags vanish; lengths are
counted on a copy of the text with every character beyond the BMP split into its two surrogates, so
they are UTF-16 units, like Telegram's. A character produced by unescaping (`&#128512;`) counts one
unit there although it takes two: Pyrogram sent the offsets after it one short, Telegram drew them
so, and they are kept.
"""

from __future__ import annotations

import html
import re
from array import array
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

_MARKDOWN_TAGS = {"```": "pre", "`": "code", "~~": "s", "--": "u", "__": "i", "**": "b", "||": "spoiler"}
_FIXED_WIDTH = ("`", "```")
# The alternatives in Pyrogram's order: "```" before "`"; a delimiter before a link at one position,
# and a link swallows the delimiters inside it, which then stay as text.
_MARKDOWN_RE = re.compile(
    "({})".format("|".join(re.escape(d) for d in _MARKDOWN_TAGS)) + r"|\[(.+?)\]\((.+?)\)"
)

# Pyrogram strips blanks around a leading opening tag and a trailing closing tag, on top of the
# strip of the whole text, so "<b> hi </b>" is "hi" in bold.
_LEADING_TAG_RE = re.compile(r"^\s*(<[\w<>=\s\"]*>)\s*")
_TRAILING_TAG_RE = re.compile(r"\s*(</[\w</>]*>)\s*$")
_MENTION_RE = re.compile(r"tg://user\?id=(\d+)")
_INT64_END = 2**63

# Tag → Bot API entity type, for the tags that carry nothing but their extent. Anything not here
# nor handled in `_entity_for` (`<tg-spoiler>`, `<br>`, `<span>` …) leaves only its text.
_PLAIN_TAGS = {
    "b": "bold", "strong": "bold",
    "i": "italic", "em": "italic",
    "u": "underline",
    "s": "strikethrough", "del": "strikethrough", "strike": "strikethrough",
    "blockquote": "blockquote",
    "code": "code",
    "spoiler": "spoiler",
}


def to_utf16_units(text: str) -> str:
    """`text` with each character beyond the BMP as two surrogate characters: `len` is UTF-16 units."""
    units = array("H", text.encode("utf-16-le"))
    return "".join(map(chr, units))


def from_utf16_units(text: str) -> str:
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def _replace_once(source: str, old: str, new: str, start: int) -> str:
    return source[:start] + source[start:].replace(old, new, 1)


def _markdown_to_html(source: str) -> str:
    """Pyrogram's `Markdown.parse` without its HTML pass.

    The matches are found in the original text but replaced in the rewritten one, at the original
    position: the rewritten text has grown by then, so each replacement takes the first occurrence
    at or after that position, which may be an earlier one than the match (one skipped inside code).
    """
    text = source
    open_delims: set[str] = set()
    in_fixed_width = False
    for match in _MARKDOWN_RE.finditer(source):
        start = match.start()
        delim, link_text, url = match.groups()
        if delim in _FIXED_WIDTH:
            in_fixed_width = not in_fixed_width  # "`" and "```" share one switch
        if in_fixed_width and delim not in _FIXED_WIDTH:
            continue  # formatting and links inside code stay as typed
        if link_text:
            text = _replace_once(text, match.group(0), f'<a href="{url}">{link_text}</a>', start)
            continue
        tag = _MARKDOWN_TAGS[delim]
        if delim in open_delims:
            open_delims.remove(delim)
            text = _replace_once(text, delim, f"</{tag}>", start)
        elif delim == "```":
            open_delims.add(delim)
            # The language runs to the end of the line of the first "```" left anywhere in the text.
            head = text[text.find("```"):].split("\n")[0]
            text = _replace_once(text, head, f'<pre language="{head[3:]}">', start)
        else:
            open_delims.add(delim)
            text = _replace_once(text, delim, f"<{tag}>", start)
    return text


def _entity_for(tag: str, attrs: dict[str, str | None]) -> dict[str, Any] | None:
    """The entity Pyrogram opens for `tag`. A `dropped` key marks one tgcast cannot send, a `refused`
    key one on which Pyrogram raised, so that the older bot never sent the message at all."""
    if tag in _PLAIN_TAGS:
        return {"type": _PLAIN_TAGS[tag]}
    if tag == "pre":
        # A bare `language` attribute would have made Pyrogram fail to serialise; read it as none.
        language = attrs.get("language")
        return {"type": "pre", "language": language} if language else {"type": "pre"}
    if tag == "a":
        url = attrs.get("href", "")
        if url is None:  # a bare `href`: Pyrogram's mention pattern raised on it
            return {"type": "text_link", "dropped": True, "refused": True}
        if _MENTION_RE.match(url):
            # A mention of a user needs that user's access hash as the sending account knows it;
            # tgcast has none to give (see the Telethon gateway), so the name stays as plain text.
            return {"type": "text_mention", "dropped": True}
        # Telegram ignored an empty link; tgcast's gateway would drop it too.
        return {"type": "text_link", "url": url} if url else {"type": "text_link", "dropped": True}
    if tag == "emoji":
        try:
            document_id = int(attrs.get("id") or "")  # Pyrogram's own conversion
        except ValueError:
            document_id = _INT64_END  # no id or not a number: Pyrogram raised
        if not -_INT64_END <= document_id < _INT64_END:  # or it failed to serialise it
            return {"type": "custom_emoji", "dropped": True, "refused": True}
        return {"type": "custom_emoji", "custom_emoji_id": str(document_id)}
    return None


class _EntityCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""  # in UTF-16 units (see to_utf16_units)
        self.closed: list[dict[str, Any]] = []
        self.open: dict[str, list[dict[str, Any]]] = {}
        self.refused = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entity = _entity_for(tag, dict(attrs))
        if entity is not None:
            self.refused = self.refused or entity.pop("refused", False)
            entity.update(offset=len(self.text), length=0)
            self.open.setdefault(tag, []).append(entity)

    def handle_data(self, data: str) -> None:
        data = html.unescape(data)  # the parser has unescaped it already; Pyrogram does it again
        for stack in self.open.values():
            for entity in stack:
                entity["length"] += len(data)
        self.text += data

    def handle_endtag(self, tag: str) -> None:
        stack = self.open.get(tag)
        if stack:  # an unmatched closing tag is ignored
            self.closed.append(stack.pop())
            if not stack:
                del self.open[tag]


@dataclass(frozen=True)
class PyrogramParse:
    text: str
    entities: list[dict[str, Any]]  # those tgcast can send
    dropped: list[str]  # the types of those it cannot
    refused: bool  # Pyrogram raised on this text: the older bot never sent it


def parse_pyrogram(typed: str) -> PyrogramParse:
    typed = typed.strip()
    text = _markdown_to_html(typed)
    text = _LEADING_TAG_RE.sub(r"\1", text)
    text = _TRAILING_TAG_RE.sub(r"\1", text)
    collector = _EntityCollector()
    try:
        collector.feed(to_utf16_units(text))
        collector.close()
    except AssertionError:
        # The standard library's parser gives up on some malformed declarations ("<![x>"), and Pyrogram
        # with it. Nothing was ever shown; keep what was typed, unformatted.
        return PyrogramParse(typed, [], [], refused=True)
    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    for entity in collector.closed:
        if entity["length"] <= 0:
            continue  # Pyrogram removes empty entities before sending
        if entity.pop("dropped", False):
            dropped.append(entity["type"])
        else:
            kept.append(entity)
    return PyrogramParse(from_utf16_units(collector.text), kept, dropped, collector.refused)
