"""Texts in Uzbek (default), Russian and English, from the gettext catalogs in
`core/locales/<lang>/LC_MESSAGES/<feature>.po`.

Each feature keeps its own file (`login.po`, `admin.po`, …) whose keys start with the feature name.
The msgids are those keys, not English sentences: handlers and workers only ever name keys, so
wording can change without touching code. A text that shows a count with a noun is a plural message
(`msgid_plural`, one `msgstr[i]` per form of the language's `Plural-Forms` header, which Babel
knows from CLDR); the code asks for it with the count and gettext picks the form. The three
languages must hold the same keys with the same placeholders (a test checks; docs/bot.md says how
to add a key).

The repository holds no compiled `.mo` files: every `.po` of a language is read with Babel and
compiled in memory into one `gettext.GNUTranslations` when the texts are first used. This is what
aiogram's `I18n` holds too (a `GNUTranslations` per language, asked with gettext/ngettext), but it
is not used here: importing anything of aiogram loads all of it (~3 s, ~120 MB), and the RQ workers,
which send notices with `t`, do not load aiogram (jobs/__init__.py).
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("uz", "ru", "en")
FALLBACK = "en"  # a key missing in a language shows in English, and a key missing there shows as itself
LOCALES = Path(__file__).resolve().parent / "locales"


def po_files(lang: str, root: Path = LOCALES) -> list[Path]:
    return sorted((root / lang / "LC_MESSAGES").glob("*.po"))


def read_catalog(lang: str, root: Path = LOCALES) -> Catalog:
    """Every feature file of one language as one Babel catalog (the header of the first file)."""
    merged: Catalog | None = None
    for path in po_files(lang, root):
        with path.open("rb") as fh:
            part = read_po(fh, locale=lang, domain=path.stem, abort_invalid=True)
        if merged is None:
            merged = part
            continue
        for message in part:
            if message.id:
                merged[message.id] = message
    if merged is None:
        raise FileNotFoundError(f"no catalogs for {lang!r} under {root}")
    return merged


def compile_catalog(catalog: Catalog) -> gettext.GNUTranslations:
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def load_translations(root: Path = LOCALES) -> dict[str, gettext.GNUTranslations]:
    """Every language under `root`, compiled, with English behind every other language."""
    found = {
        folder.name: compile_catalog(read_catalog(folder.name, root))
        for folder in sorted(root.iterdir())
        if folder.is_dir() and po_files(folder.name, root)
    }
    english = found.get(FALLBACK)
    for lang, translations in found.items():
        if english is not None and lang != FALLBACK:
            translations.add_fallback(english)
    return found


@cache
def translations() -> dict[str, gettext.GNUTranslations]:
    return load_translations(LOCALES)


def resolve_language(chosen: str | None, telegram_code: str | None, default: str) -> str:
    if chosen in LANGUAGES:
        return chosen
    base = (telegram_code or "").split("-")[0].lower()
    return base if base in LANGUAGES else default


class LanguageRow(Protocol):
    """What a person's row tells about their language (`db.rows.BotUser`)."""

    language: str | None  # chosen with /lang
    language_code: str | None  # the code Telegram sends with their updates, as last seen


def person_language(row: LanguageRow | None, default: str, update_code: str | None = None) -> str:
    """One person's language, the same wherever the bot speaks to them: replies to their updates,
    notices from the workers, notices to admins. Their /lang choice; else the Telegram code stored
    on their row (the context middleware keeps it current); else the code of the update at hand
    (someone without a row yet); else the default."""
    chosen, stored = (row.language, row.language_code) if row is not None else (None, None)
    return resolve_language(chosen, stored, resolve_language(None, update_code, default))


def t(lang: str, key: str, /, n: int | None = None, **values: Any) -> str:
    """The text of `key` in `lang`; with `n`, the plural form for that count (the count is shown
    only if it is passed among `values` too, under the name its placeholder has)."""
    loaded = translations()
    texts = loaded.get(lang) or loaded[FALLBACK]
    template = texts.gettext(key) if n is None else texts.ngettext(key, key, n)
    return template.format(**values) if values else template


class Translator:
    """Bound to one user's language; handlers receive it as `tr`: `tr(key, ...)`, and
    `tr.n(key, count, ...)` for a message with plural forms."""

    __slots__ = ("lang",)

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, /, **values: Any) -> str:
        return t(self.lang, key, **values)

    def n(self, key: str, count: int, /, **values: Any) -> str:
        return t(self.lang, key, n=count, **values)
