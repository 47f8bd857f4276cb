"""Telegram's HTML formatting, both ways: HTML → (text, entities) and (text, entities) → safe HTML.

The sandbox parses HTML where Telegram would (the bot's `parse_mode=HTML` messages, and the page's
composer, whose toolbar wraps the selection in the same tags), so everything it stores and shows is
plain text plus entities with UTF-16 offsets, exactly what a real client receives and what the
broadcast keeps. Rendering goes the other way for the page with aiogram's entity walk (the one the
bot's own previews use, handlers/message.py) and the page's own tags, escaping every character of
the text: no HTML from a message ever reaches the browser unescaped.
"""

from __future__ import annotations

import html
from bisect import bisect_left
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from aiogram.types import MessageEntity
from aiogram.utils.text_decorations import HtmlDecoration

from core.content import utf16_len

# Tag → entity type, as Telegram's HTML parse mode defines them.
_SIMPLE = {
    "b": "bold", "strong": "bold",
    "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_TAGS = {*_SIMPLE, "a", "span", "blockquote", "tg-emoji"}


class MarkupError(ValueError):
    """The HTML is not something Telegram would accept (Telegram answers 400 "can't parse entities")."""


@dataclass
class _Open:
    tag: str
    entity: dict[str, Any] | None
    start: int


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.pos = 0
        self.stack: list[_Open] = []
        self.entities: list[dict[str, Any]] = []

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.pos += utf16_len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TAGS:
            raise MarkupError(f'unsupported start tag "{tag}"')
        values = {k: v or "" for k, v in attrs}
        entity: dict[str, Any] | None
        if tag in _SIMPLE:
            entity = {"type": _SIMPLE[tag]}
            language = values.get("class", "")
            if tag == "code" and language.startswith("language-") and self.stack and self.stack[-1].tag == "pre":
                # <pre><code class="language-x"> is one pre entity with a language, not pre + code.
                outer = self.stack[-1].entity
                if outer is not None:
                    outer["language"] = language.removeprefix("language-")
                entity = None
        elif tag == "a":
            href = values.get("href", "")
            if not href:
                raise MarkupError("a link without href")
            if href.startswith("tg://user?id=") and href[13:].isdigit():
                entity = {"type": "text_mention", "user": {"id": int(href[13:]), "is_bot": False, "first_name": ""}}
            else:
                entity = {"type": "text_link", "url": href}
        elif tag == "span":
            if values.get("class") != "tg-spoiler":
                raise MarkupError('a span needs class="tg-spoiler"')
            entity = {"type": "spoiler"}
        elif tag == "blockquote":
            entity = {"type": "expandable_blockquote" if "expandable" in values else "blockquote"}
        else:  # tg-emoji
            emoji_id = values.get("emoji-id", "")
            if not emoji_id.isdigit():
                raise MarkupError("tg-emoji needs a numeric emoji-id")
            entity = {"type": "custom_emoji", "custom_emoji_id": emoji_id}
        self.stack.append(_Open(tag, entity, self.pos))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1].tag != tag:
            raise MarkupError(f'unexpected end tag "{tag}"')
        opened = self.stack.pop()
        length = self.pos - opened.start
        if opened.entity is not None and length > 0:
            self.entities.append({**opened.entity, "offset": opened.start, "length": length})


def parse_html(markup: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's `parse_mode=HTML`: the plain text and its entities (UTF-16 offsets, outer first)."""
    parser = _Parser()
    parser.feed(markup)
    parser.close()
    if parser.stack:
        raise MarkupError(f'no end tag for "{parser.stack[-1].tag}"')
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.text), entities


# ---- rendering for the page ------------------------------------------------------------------

_SAFE_SCHEMES = ("http", "https", "tg", "mailto")
# Entity types drawn with a tag of their own; any other (mentions, hashtags, a text mention, a custom
# emoji, a type Telegram adds later) is a <span class="tg-TYPE"> the page's stylesheet may colour.
_TAGGED = frozenset({"bold", "italic", "underline", "strikethrough", "code", "pre", "spoiler", "blockquote",
                     "expandable_blockquote", "text_link"})


class _PageHtml(HtmlDecoration):
    """aiogram's HTML decoration with the page's tags: classes for what the browser has no tag for,
    and links only to safe schemes (no javascript: URL ever reaches the page)."""

    def apply_entity(self, entity: MessageEntity, text: str) -> str:
        if entity.type in _TAGGED:
            return super().apply_entity(entity, text)
        return f'<span class="tg-{html.escape(entity.type)}">{text}</span>'

    def link(self, value: str, link: str) -> str:
        if urlsplit(link).scheme.lower() in _SAFE_SCHEMES:
            return f'<a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">{value}</a>'
        return f'<span class="tg-text_link">{value}</span>'

    def pre(self, value: str) -> str:
        return self.pre_language(value, "")

    def pre_language(self, value: str, language: str) -> str:
        return f'<pre data-language="{html.escape(language)}">{value}</pre>'

    def spoiler(self, value: str) -> str:
        return f'<span class="tg-spoiler">{value}</span>'

    def blockquote(self, value: str) -> str:
        return f'<blockquote class="tg-blockquote">{value}</blockquote>'

    def expandable_blockquote(self, value: str) -> str:
        return f'<blockquote class="tg-expandable_blockquote">{value}</blockquote>'


_PAGE = _PageHtml()


def _well_nested(entities: list[MessageEntity]) -> list[MessageEntity]:
    """The entities cut where one overlaps the end of another (Telegram sends them nested, but the
    page draws whatever a bot stored), outer first: aiogram's walk expects nesting."""
    pending = sorted(entities, key=lambda e: (e.offset, -e.length))
    nested: list[MessageEntity] = []
    open_ends: list[int] = []
    while pending:
        entity = pending.pop(0)
        end = entity.offset + entity.length
        while open_ends and open_ends[-1] <= entity.offset:
            open_ends.pop()
        if open_ends and end > open_ends[-1]:  # runs past the end of the one it starts in: split it there
            cut = open_ends[-1]
            rest = entity.model_copy(update={"offset": cut, "length": end - cut})
            entity = entity.model_copy(update={"length": cut - entity.offset})
            pending.append(rest)
            pending.sort(key=lambda e: (e.offset, -e.length))
            end = cut
        nested.append(entity)
        open_ends.append(end)
    return nested


def render_html(text: str, entities: list[dict[str, Any]] | None) -> str:
    """Escaped text with the entities as tags; overlapping entities are split so the result is
    always well-nested, and entities outside the text or malformed are left out."""
    # Where a character starts, in UTF-16 units: an entity's ends are moved onto the next one, so no
    # tag falls inside a surrogate pair.
    starts = [0]
    for char in text:
        starts.append(starts[-1] + utf16_len(char))

    def boundary(unit: int) -> int:
        return starts[bisect_left(starts, unit)] if unit <= starts[-1] else starts[-1]

    kept = []
    for raw in entities or []:
        try:
            entity = MessageEntity.model_validate(raw)
        except ValueError:
            continue
        if entity.offset < 0 or entity.length <= 0:
            continue
        start, end = boundary(entity.offset), boundary(entity.offset + entity.length)
        if start < end:
            kept.append(entity.model_copy(update={"offset": start, "length": end - start}))
    return _PAGE.unparse(text, _well_nested(kept))
