"""Pyrogram 2.0.106's HTML pass, which its default parse mode runs after the Markdown rewrite.

A replica, quirks included, because the older bot's messages looked the way this pass left them:
tags are read by the standard library's `HTMLParser` (as Pyrogram does), text is unescaped a second
time after the parser already did, entities still open at the end are dropped while their text
stays, unknown tags vanish, and lengths are counted on a copy of the text with every character
beyond the BMP split into its two surrogates, so they are UTF-16 units, like Telegram's. A character
produced by unescaping (`&#128512;`) counts one unit there although it takes two: Pyrogram sent the
offsets after it one short, Telegram drew them so, and they are kept.
"""

from __future__ import annotations

import html
import re
from array import array
from html.parser import HTMLParser
from typing import Any

# Pyrogram strips blanks around a leading opening tag and a trailing closing tag, on top of the
# strip of the whole text, so "<b> hi </b>" is "hi" in bold.
_LEADING_TAG_RE = re.compile(r"^\s*(<[\w<>=\s\"]*>)\s*")
_TRAILING_TAG_RE = re.compile(r"\s*(</[\w</>]*>)\s*$")
_MENTION_RE = re.compile(r"tg://user\?id=(\d+)")

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


def _entity_for(tag: str, attrs: dict[str, str | None]) -> dict[str, Any] | None:
    """The entity Pyrogram opens for `tag`; a `dropped` key marks one tgcast cannot send."""
    if tag in _PLAIN_TAGS:
        return {"type": _PLAIN_TAGS[tag]}
    if tag == "pre":
        # A bare `language` attribute would have made Pyrogram fail to serialise; read it as none.
        language = attrs.get("language")
        return {"type": "pre", "language": language} if language else {"type": "pre"}
    if tag == "a":
        url = attrs.get("href", "")
        if url is None or _MENTION_RE.match(url):
            # A mention of a user needs that user's access hash as the sending account knows it;
            # tgcast has none to give (see the Telethon gateway), so the name stays as plain text.
            # A bare `href` made Pyrogram fail outright: nothing to keep either.
            return {"type": "text_mention" if url else "text_link", "dropped": True}
        # Telegram ignored an empty link; tgcast's gateway would drop it too.
        return {"type": "text_link", "url": url} if url else {"type": "text_link", "dropped": True}
    if tag == "emoji":
        try:
            document_id = int(attrs.get("id") or "")  # Pyrogram's own conversion
        except ValueError:
            return {"type": "custom_emoji", "dropped": True}  # Pyrogram raised: the emoji was never sent
        return {"type": "custom_emoji", "custom_emoji_id": str(document_id)}
    return None


class _EntityCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text = ""  # in UTF-16 units (see to_utf16_units)
        self.closed: list[dict[str, Any]] = []
        self.open: dict[str, list[dict[str, Any]]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entity = _entity_for(tag, dict(attrs))
        if entity is not None:
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


def parse_pyrogram_html(text: str) -> tuple[str, list[dict[str, Any]], list[str]]:
    """Text, the entities tgcast can send, and the types of those it cannot, as Pyrogram would parse."""
    text = _LEADING_TAG_RE.sub(r"\1", text)
    text = _TRAILING_TAG_RE.sub(r"\1", text)
    collector = _EntityCollector()
    collector.feed(to_utf16_units(text))
    collector.close()
    kept: list[dict[str, Any]] = []
    dropped: list[str] = []
    for entity in collector.closed:
        if entity["length"] <= 0:
            continue  # Pyrogram removes empty entities before sending
        if entity.pop("dropped", False):
            dropped.append(entity["type"])
        else:
            kept.append(entity)
    return from_utf16_units(collector.text), kept, dropped
