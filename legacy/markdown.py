"""The older bot's message texts, as its client library turned them into text and entities.

The older bot stored the raw text it sent and let its library's default parse mode format it. To
post the same message, tgcast stores what the library produced: the plain text and Bot API style
entities, offsets in UTF-16 units. Both libraries are replicated quirk for quirk, since their quirks
are what the groups saw:

- "pyrogram" (Pyrogram 2.0.106, `ParseMode.DEFAULT`): the text is stripped, Markdown delimiters
  (`**` `__` `--` `~~` `||` `` ` `` ```` ``` ````, `[text](url)`) are rewritten into HTML tags by
  position, then the whole is read as HTML (`legacy.pyrogram_parse`). A delimiter left unclosed
  leaves an opening tag that never closes: its text stays, unformatted.
- "gramjs" (npm `telegram` 2.25–2.26, `MarkdownParser`): `**` `__` `~~` `` ` `` only, no links, no
  escapes, no strip. Every delimiter is removed, closed or not, and each removal takes the first
  occurrence in the whole text, wherever the scan stands.

Telegram's own treatment of what it received (trimming the message, checking links) is not
replicated: tgcast sends the same text and entities, and Telegram treats them the same way again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.content import TEXT_LIMIT, utf16_len
from legacy.pyrogram_parse import from_utf16_units, parse_pyrogram, to_utf16_units

Dialect = Literal["pyrogram", "gramjs"]


@dataclass(frozen=True)
class Rendered:
    """A legacy text as tgcast stores it (`messages.text`, `messages.entities`).

    `too_long`: the text passes Telegram's limit, which the older bot could not have sent either;
    nothing is cut. `dropped`: entity types the legacy library sent (or meant to) that tgcast cannot,
    one per entity, in order; their text is kept, unformatted. `refused`: the legacy library raised
    on this text, so the older bot never posted it; what is here is a best effort. An empty `text`
    is a message neither library would send.
    """

    text: str
    entities: list[dict[str, Any]]
    too_long: bool = False
    dropped: tuple[str, ...] = ()
    refused: bool = False


def render_legacy(text: str, dialect: Dialect) -> Rendered:
    if dialect == "pyrogram":
        parsed = parse_pyrogram(text)
        plain, entities, dropped, refused = parsed.text, parsed.entities, parsed.dropped, parsed.refused
    elif dialect == "gramjs":
        (plain, entities), dropped, refused = parse_gramjs_markdown(text), [], False
    else:
        raise ValueError(f"unknown legacy dialect {dialect!r}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return Rendered(plain, entities, utf16_len(plain) > TEXT_LIMIT, tuple(dropped), refused)


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
