"""The older bot's message texts, as its client library turned them into text and entities.

The older bot stored the raw text it sent and let its library's default parse mode format it. To
post the same message, tgcast stores what the library produced: the plain text and Bot API style
entities, offsets in UTF-16 units. Both libraries are replicated quirk for quirk, since their quirks
are what the groups saw:

- "pyrogram" (Pyrogram 2.0.106, `ParseMode.DEFAULT`): the text is stripped, Markdown delimiters
  (`**` `__` `--` `~~` `||` `` ` `` ```` ``` ````, `[text](url)`) are rewritten into HTML tags by
  position, then the whole is read as HTML (`legacy.pyrogram_html`). A delimiter left unclosed
  leaves an opening tag that never closes: its text stays, unformatted.
- "gramjs" (npm `telegram` 2.25–2.26, `MarkdownParser`): `**` `__` `~~` `` ` `` only, no links, no
  escapes, no strip. Every delimiter is removed, closed or not, and each removal takes the first
  occurrence in the whole text, wherever the scan stands.

Telegram's own treatment of what it received (trimming the message, checking links) is not
replicated: tgcast sends the same text and entities, and Telegram treats them the same way again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from core.content import TEXT_LIMIT, utf16_len
from legacy.pyrogram_html import from_utf16_units, parse_pyrogram_html, to_utf16_units

Dialect = Literal["pyrogram", "gramjs"]


@dataclass(frozen=True)
class Rendered:
    """A legacy text as tgcast stores it (`messages.text`, `messages.entities`).

    `too_long`: the text passes Telegram's limit, which the older bot could not have sent either;
    nothing is cut. `dropped`: entity types the legacy library sent (or meant to) that tgcast cannot,
    one per entity, in order; their text is kept, unformatted.
    """

    text: str
    entities: list[dict[str, Any]]
    too_long: bool = False
    dropped: tuple[str, ...] = ()


def render_legacy(text: str, dialect: Dialect) -> Rendered:
    if dialect == "pyrogram":
        plain, entities, dropped = parse_pyrogram_html(pyrogram_markdown_to_html(text.strip()))
    elif dialect == "gramjs":
        plain, entities, dropped = *parse_gramjs_markdown(text), []
    else:
        raise ValueError(f"unknown legacy dialect {dialect!r}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return Rendered(plain, entities, utf16_len(plain) > TEXT_LIMIT, tuple(dropped))


# --- Pyrogram: Markdown rewritten into HTML ----------------------------------------------------------

_PYROGRAM_TAGS = {"```": "pre", "`": "code", "~~": "s", "--": "u", "__": "i", "**": "b", "||": "spoiler"}
_PYROGRAM_FIXED_WIDTH = ("`", "```")
# The alternatives in Pyrogram's order: "```" before "`"; a delimiter before a link at one position,
# and a link swallows the delimiters inside it, which then stay as text.
_PYROGRAM_MARKDOWN_RE = re.compile(
    "({})".format("|".join(re.escape(d) for d in _PYROGRAM_TAGS)) + r"|\[(.+?)\]\((.+?)\)"
)


def _replace_once(source: str, old: str, new: str, start: int) -> str:
    return source[:start] + source[start:].replace(old, new, 1)


def pyrogram_markdown_to_html(source: str) -> str:
    """Pyrogram's `Markdown.parse` without its HTML pass.

    The matches are found in the original text but replaced in the rewritten one, at the original
    position: the rewritten text has grown by then, so each replacement takes the first occurrence
    at or after that position, which may be an earlier one than the match (one skipped inside code).
    """
    text = source
    open_delims: set[str] = set()
    in_fixed_width = False
    for match in _PYROGRAM_MARKDOWN_RE.finditer(source):
        start = match.start()
        delim, link_text, url = match.groups()
        if delim in _PYROGRAM_FIXED_WIDTH:
            in_fixed_width = not in_fixed_width  # "`" and "```" share one switch
        if in_fixed_width and delim not in _PYROGRAM_FIXED_WIDTH:
            continue  # formatting and links inside code stay as typed
        if link_text:
            text = _replace_once(text, match.group(0), f'<a href="{url}">{link_text}</a>', start)
            continue
        tag = _PYROGRAM_TAGS[delim]
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


# --- gramjs: its MarkdownParser --------------------------------------------------------------------

# In gramjs's order, which breaks ties: "`" comes before "```" and is found at the same index, so
# "```" never wins and a fence is three code delimiters.
_GRAMJS_DELIMS = {"**": "bold", "__": "italic", "~~": "strikethrough", "`": "code", "```": "pre"}


def parse_gramjs_markdown(message: str) -> tuple[str, list[dict[str, Any]]]:
    """gramjs's `MarkdownParser.parse`, on UTF-16 units as JavaScript strings are."""
    message = to_utf16_units(message)
    opened: dict[str, int] = {}
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(message):
        found, delim = -1, ""
        for key in _GRAMJS_DELIMS:
            index = message.find(key, i)
            if index > -1 and (found == -1 or index < found):
                found, delim = index, key
        if found == -1:
            break
        if delim in opened:
            offset = opened.pop(delim)
            if found > offset:  # gramjs sends an empty entity too; Telegram shows nothing for it
                entities.append({"type": _GRAMJS_DELIMS[delim], "offset": offset, "length": found - offset})
        else:
            opened[delim] = found
        message = message.replace(delim, "", 1)  # JavaScript's replace: the first occurrence anywhere
        i = found
    return from_utf16_units(message), entities
