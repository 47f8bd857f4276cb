"""Texts in Uzbek (default), Russian and English, from the catalogs in `core/locales/<lang>/*.json`.

Each feature keeps its own file (`login.json`, `admin.json`, …) whose keys start with the feature
name; the catalogs of the three languages must hold the same keys with the same placeholders (a test
checks). Handlers and workers only ever name keys, so wording can change without touching code.
"""

from __future__ import annotations

import json
import string
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("uz", "ru", "en")


@cache
def catalog(lang: str) -> dict[str, str]:
    folder = resources.files("core") / "locales" / lang
    merged: dict[str, str] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            merged.update(json.loads(entry.read_text(encoding="utf-8")))
    return merged


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def resolve_language(chosen: str | None, telegram_code: str | None, default: str) -> str:
    if chosen in LANGUAGES:
        return chosen
    base = (telegram_code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


def t(lang: str, key: str, **values: Any) -> str:
    template = catalog(lang).get(key)
    if template is None:
        template = catalog("en").get(key, key)  # a missing key must not break a screen
    return template.format(**values) if values else template


class Translator:
    """Bound to one user's language; handlers receive it as `tr`."""

    __slots__ = ("lang",)

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **values: Any) -> str:
        return t(self.lang, key, **values)
