"""The catalogs: every language holds every key with the same placeholders, and every key the code
names exists. Runs over ALL catalog files, whoever wrote them."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from core.i18n import LANGUAGES, Translator, catalog, placeholders, resolve_language

LOCALES = Path(__file__).resolve().parent.parent / "core" / "locales"
FILES = sorted({p.name for lang in LANGUAGES for p in (LOCALES / lang).glob("*.json")})
# Telegram's HTML parse mode knows these tags only; anything else is a 400 at send time.
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                 "pre", "blockquote", "tg-emoji"}


def _load(lang: str, name: str) -> dict[str, str]:
    path = LOCALES / lang / name
    assert path.exists(), f"{lang}/{name} is missing"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", FILES)
def test_every_language_has_the_same_keys(name: str) -> None:
    keys = {lang: set(_load(lang, name)) for lang in LANGUAGES}
    for lang in LANGUAGES:
        missing = keys["en"] - keys[lang]
        extra = keys[lang] - keys["en"]
        assert not missing and not extra, f"{lang}/{name}: missing {sorted(missing)}, extra {sorted(extra)}"


@pytest.mark.parametrize("name", FILES)
def test_placeholders_are_the_same_in_every_language(name: str) -> None:
    reference = _load("en", name)
    for lang in LANGUAGES:
        for key, text in _load(lang, name).items():
            assert key in reference
            assert placeholders(text) == placeholders(reference[key]), f"{lang}/{name}: {key}"


@pytest.mark.parametrize("name", FILES)
def test_keys_are_prefixed_with_their_feature(name: str) -> None:
    feature = name.removesuffix(".json")
    for lang in LANGUAGES:
        for key, text in _load(lang, name).items():
            assert key.startswith(feature + "."), f"{lang}/{name}: {key}"
            assert isinstance(text, str) and text.strip(), f"{lang}/{name}: {key} is empty"


def test_no_key_is_defined_in_two_files() -> None:
    for lang in LANGUAGES:
        seen: dict[str, str] = {}
        for name in FILES:
            for key in _load(lang, name):
                assert key not in seen, f"{lang}: {key} in {seen[key]} and {name}"
                seen[key] = name


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(f"unsupported <{tag}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unbalanced </{tag}>")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_html_is_what_telegram_accepts(lang: str) -> None:
    for key, text in catalog(lang).items():
        checker = _TagChecker()
        checker.feed(text)
        checker.close()
        assert not checker.problems and not checker.stack, f"{lang}: {key}: {checker.problems or checker.stack}"
        # A bare "<" or "&" that is not a tag or entity breaks Telegram's parser.
        assert not re.search(r"<(?![/a-z])|&(?![a-z]+;|#\d+;)", text), f"{lang}: {key} has an unescaped < or &"


_KEY_IN_CODE = re.compile(r"""\btr\(\s*["']([a-z_]+\.[a-z0-9_]+)["']""")


def test_every_key_named_in_the_code_exists() -> None:
    root = LOCALES.parent.parent
    named: set[tuple[str, str]] = set()
    for folder in ("handlers", "services", "jobs", "api"):
        for path in (root / folder).rglob("*.py"):
            named |= {(m, str(path.relative_to(root))) for m in _KEY_IN_CODE.findall(path.read_text("utf-8"))}
    assert named, "the pattern found no keys at all: it is broken"
    known = set(catalog("en"))
    unknown = sorted(f"{key} ({where})" for key, where in named if key not in known)
    assert not unknown, unknown


def test_format_with_placeholders_in_each_language() -> None:
    for lang in LANGUAGES:
        text = Translator(lang)("menu.your_id", id=42)
        assert "42" in text


@pytest.mark.parametrize(
    ("chosen", "telegram", "expected"),
    [("ru", "en", "ru"), (None, "ru-RU", "ru"), (None, "de", "uz"), (None, None, "uz"), ("xx", "en", "en")],
)
def test_language_resolution(chosen: str | None, telegram: str | None, expected: str) -> None:
    assert resolve_language(chosen, telegram, "uz") == expected
