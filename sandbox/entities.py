"""Telegram's HTML formatting, both ways: HTML → (text, entities) and (text, entities) → safe HTML.

The sandbox parses HTML where Telegram would (the bot's `parse_mode=HTML` messages, and the page's
composer, whose toolbar wraps the selection in the same tags), so everything it stores and shows is
plain text plus entities with UTF-16 offsets, exactly what a real client receives and what the
broadcast keeps. Rendering goes the other way for the page, escaping every character of the text:
no HTML from a message ever reaches the browser unescaped.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

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


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


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


def _open_tag(entity: dict[str, Any]) -> tuple[str, str]:
    kind = entity.get("type", "")
    simple = {"bold": "b", "italic": "i", "underline": "u", "strikethrough": "s", "code": "code"}
    if kind in simple:
        return f"<{simple[kind]}>", f"</{simple[kind]}>"
    if kind == "pre":
        lang = html.escape(str(entity.get("language") or ""))
        return f'<pre data-language="{lang}">', "</pre>"
    if kind == "spoiler":
        return '<span class="tg-spoiler">', "</span>"
    if kind in ("blockquote", "expandable_blockquote"):
        return f'<blockquote class="tg-{kind}">', "</blockquote>"
    if kind == "text_link":
        url = str(entity.get("url") or "")
        if urlsplit(url).scheme.lower() in _SAFE_SCHEMES:
            return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">', "</a>"
        return '<span class="tg-text_link">', "</span>"
    return f'<span class="tg-{html.escape(kind)}">', "</span>"


def render_html(text: str, entities: list[dict[str, Any]] | None) -> str:
    """Escaped text with the entities as tags; overlapping entities are closed and reopened so the
    result is always well-nested."""
    spans: list[tuple[int, int, int, dict[str, Any]]] = []
    for index, entity in enumerate(entities or []):
        try:
            start, length = int(entity["offset"]), int(entity["length"])
        except (KeyError, TypeError, ValueError):
            continue
        if length > 0 and start >= 0:
            spans.append((start, start + length, index, entity))
    spans.sort(key=lambda s: (s[0], -s[1], s[2]))

    out: list[str] = []
    stack: list[tuple[int, int, int, dict[str, Any]]] = []
    pending = list(spans)
    pos = 0

    def close_until(position: int) -> None:
        # Close every span that ends here; spans above it on the stack are closed and reopened.
        while any(s[1] <= position for s in stack):
            reopen: list[tuple[int, int, int, dict[str, Any]]] = []
            while stack:
                top = stack.pop()
                out.append(_open_tag(top[3])[1])
                if top[1] <= position:
                    break
                reopen.append(top)
            for span in reversed(reopen):
                out.append(_open_tag(span[3])[0])
                stack.append(span)

    def open_at(position: int) -> None:
        while pending and pending[0][0] <= position:
            span = pending.pop(0)
            out.append(_open_tag(span[3])[0])
            stack.append(span)

    for char in text:
        close_until(pos)
        open_at(pos)
        out.append(html.escape(char, quote=False))
        pos += utf16_len(char)
    close_until(10**9)
    return "".join(out)
