"""The catalogs' texts by key, for tests that match screens against them or check their placeholders
(the bot itself reads them through `core.i18n.t`)."""

from __future__ import annotations

import string
from functools import cache

from babel.messages.catalog import Catalog

from core.i18n import read_catalog


def entries(cat: Catalog) -> dict[str, tuple[str, ...]]:
    """key -> its forms: one for a plain message, one per plural form for a plural one."""
    texts: dict[str, tuple[str, ...]] = {}
    for message in cat:
        if not message.id:
            continue  # the header
        if isinstance(message.id, str):
            texts[message.id] = (str(message.string or ""),)
        else:
            texts[message.id[0]] = tuple(message.string or ())
    return texts


@cache
def catalog(lang: str) -> dict[str, tuple[str, ...]]:
    """Every text of one language, by key."""
    return entries(read_catalog(lang))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
