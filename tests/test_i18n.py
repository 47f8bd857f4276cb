"""The catalogs: every .po parses with its language's plural header, every language holds every key
with the same placeholders (in every plural form), plural messages pick the right form, and every
key the code names exists. Runs over ALL catalog files, whoever wrote them."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.plurals import get_plural
from babel.messages.pofile import read_po

from core.i18n import LANGUAGES, LOCALES, Translator, load_translations, resolve_language, t
from tests.catalogs import catalog, entries, placeholders

FILES = sorted({p.stem for lang in LANGUAGES for p in (LOCALES / lang / "LC_MESSAGES").glob("*.po")})
# Telegram's HTML parse mode knows these tags only; anything else is a 400 at send time.
TELEGRAM_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                 "pre", "blockquote", "tg-emoji"}


def _path(lang: str, name: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{name}.po"


def _read(lang: str, name: str) -> Catalog:
    path = _path(lang, name)
    assert path.exists(), f"{lang}/{name}.po is missing"
    with path.open("rb") as fh:
        return read_po(fh, locale=lang, abort_invalid=True)


def _load(lang: str, name: str) -> dict[str, tuple[str, ...]]:
    """key -> its forms (one for a plain message)."""
    return entries(_read(lang, name))


def _plural_keys(lang: str, name: str) -> set[str]:
    return {str(m.id[0]) for m in _read(lang, name) if m.id and m.pluralizable}


def _header_plural_forms(path: Path) -> str | None:
    """The Plural-Forms line as written in the file's header (Babel would otherwise fill one in)."""
    lines = path.read_text("utf-8").splitlines()
    start = lines.index('msgid ""')
    header = ""
    for line in lines[start + 1:]:
        if not line.strip():
            break
        header += ast.literal_eval(line.removeprefix("msgstr ").strip())
    found = [h for h in header.split("\n") if h.startswith("Plural-Forms:")]
    return found[0].removeprefix("Plural-Forms:").strip() if found else None


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", FILES)
def test_every_po_parses_and_carries_its_languages_plural_header(lang: str, name: str) -> None:
    cat = _read(lang, name)
    expected = get_plural(lang)
    written = _header_plural_forms(_path(lang, name))
    assert written is not None, f"{lang}/{name}.po has no Plural-Forms header"
    assert re.sub(r"\s+", "", written) == re.sub(r"\s+", "", expected.plural_forms), f"{lang}/{name}.po"
    assert cat.num_plurals == expected.num_plurals
    assert str(cat.locale) == lang, f"{lang}/{name}.po says Language: {cat.locale}"
    # gettext skips fuzzy entries: a fuzzy text would silently show in English instead.
    fuzzy = [m.id for m in cat if m.id and m.fuzzy]
    assert not fuzzy and not cat.obsolete, f"{lang}/{name}.po: fuzzy {fuzzy}, obsolete {list(cat.obsolete)}"


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("name", FILES)
def test_plural_messages_have_exactly_nplurals_forms(lang: str, name: str) -> None:
    nplurals = get_plural(lang).num_plurals
    for m in _read(lang, name):
        if m.id and not isinstance(m.id, str):
            key, plural = m.id[0], m.id[1]
            assert isinstance(m.string, tuple | list), f"{lang}/{name}: {key}"
            assert plural == key, f"{lang}/{name}: {key}: msgid_plural must repeat the key"
            assert len(m.string) == nplurals, f"{lang}/{name}: {key} has {len(m.string)} forms, not {nplurals}"
            assert all(form.strip() for form in m.string), f"{lang}/{name}: {key} has an empty form"


@pytest.mark.parametrize("name", FILES)
def test_every_language_has_the_same_keys(name: str) -> None:
    keys = {lang: set(_load(lang, name)) for lang in LANGUAGES}
    plural = {lang: _plural_keys(lang, name) for lang in LANGUAGES}
    for lang in LANGUAGES:
        missing = keys["en"] - keys[lang]
        extra = keys[lang] - keys["en"]
        assert not missing and not extra, f"{lang}/{name}: missing {sorted(missing)}, extra {sorted(extra)}"
        odd = plural[lang] ^ plural["en"]
        assert not odd, f"{lang}/{name}: plural in one language only: {sorted(odd)}"


@pytest.mark.parametrize("name", FILES)
def test_placeholders_are_the_same_in_every_language_and_form(name: str) -> None:
    reference = _load("en", name)
    for lang in LANGUAGES:
        for key, text in _load(lang, name).items():
            assert key in reference
            expected = placeholders(reference[key][0])
            for form in text:
                assert placeholders(form) == expected, f"{lang}/{name}: {key}: {form!r}"


@pytest.mark.parametrize("name", FILES)
def test_keys_are_prefixed_with_their_feature(name: str) -> None:
    for lang in LANGUAGES:
        for key, text in _load(lang, name).items():
            assert key.startswith(name + "."), f"{lang}/{name}: {key}"
            assert all(form.strip() for form in text), f"{lang}/{name}: {key} is empty"


def test_no_key_is_defined_in_two_files() -> None:
    for lang in LANGUAGES:
        seen: dict[str, str] = {}
        for name in FILES:
            for key in _load(lang, name):
                assert key not in seen, f"{lang}: {key} in {seen[key]} and {name}"
                seen[key] = name


def test_no_compiled_catalogs_are_kept() -> None:
    assert not list(LOCALES.rglob("*.mo")), "the .po files are compiled in memory at load"
    assert not list(LOCALES.rglob("*.json")), "the catalogs are .po files now"


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
    for key, forms in catalog(lang).items():
        for text in forms:
            checker = _TagChecker()
            checker.feed(text)
            checker.close()
            assert not checker.problems and not checker.stack, f"{lang}: {key}: {checker.problems or checker.stack}"
            # A bare "<" or "&" that is not a tag or entity breaks Telegram's parser.
            assert not re.search(r"<(?![/a-z])|&(?![a-z]+;|#\d+;)", text), f"{lang}: {key} has an unescaped < or &"


_KEY = r"""["']([a-z_]+\.[a-z0-9_]+)["']"""
_SINGULAR_IN_CODE = re.compile(r"\btr\(\s*" + _KEY + r"|\bt\(\s*[a-z_.]+,\s*" + _KEY + r"(?![^()]*\bn=)")
_PLURAL_IN_CODE = re.compile(r"\btr\.n\(\s*" + _KEY + r"|\bt\(\s*[a-z_.]+,\s*" + _KEY + r"(?=[^()]*\bn=)")


def _named(pattern: re.Pattern[str]) -> set[tuple[str, str]]:
    root = LOCALES.parent.parent
    named: set[tuple[str, str]] = set()
    for folder in ("handlers", "services", "jobs", "api"):
        for path in (root / folder).rglob("*.py"):
            for match in pattern.findall(path.read_text("utf-8")):
                named |= {(key, str(path.relative_to(root))) for key in match if key}
    return named


def test_every_key_named_in_the_code_exists_and_is_asked_for_with_a_count_if_plural() -> None:
    singular, plural = _named(_SINGULAR_IN_CODE), _named(_PLURAL_IN_CODE)
    assert singular, "the pattern found no keys at all: it is broken"
    forms = catalog("en")
    unknown = sorted(f"{key} ({where})" for key, where in singular | plural if key not in forms)
    assert not unknown, unknown
    # A plural message asked for without a count (or a plain one with a count) shows its key.
    wrong = sorted(f"{key} ({where}): plural, needs tr.n" for key, where in singular if len(forms[key]) > 1)
    wrong += sorted(f"{key} ({where}): not plural, use tr()" for key, where in plural if len(forms[key]) == 1)
    assert not wrong, wrong


def test_the_key_patterns_tell_plural_calls_from_plain_ones() -> None:
    code = 'tr("a.b", x=1)\ntr.n("c.d", 3, count=3)\nt(lang, "e.f", n=2, count=2)\nt(lang, "g.h", id=1)\n'
    assert {k for m in _SINGULAR_IN_CODE.findall(code) for k in m if k} == {"a.b", "g.h"}
    assert {k for m in _PLURAL_IN_CODE.findall(code) for k in m if k} == {"c.d", "e.f"}


def test_format_with_placeholders_in_each_language() -> None:
    for lang in LANGUAGES:
        text = Translator(lang)("menu.your_id", id=42)
        assert "42" in text


def _po(lang: str, body: str) -> str:
    return (f'msgid ""\nmsgstr ""\n"Language: {lang}\\n"\n"Plural-Forms: {get_plural(lang).plural_forms}\\n"\n'
            f'"Content-Type: text/plain; charset=utf-8\\n"\n\n{body}')


def test_a_missing_key_falls_back_to_english_then_to_the_key(tmp_path: Path) -> None:
    for lang, body in {
        "en": 'msgid "x.both"\nmsgstr "EN both"\n\nmsgid "x.en_only"\nmsgstr "EN only"\n\n'
              'msgid "x.n"\nmsgid_plural "x.n"\nmsgstr[0] "EN one"\nmsgstr[1] "EN other"\n',
        "ru": 'msgid "x.both"\nmsgstr "RU both"\n',
    }.items():
        (tmp_path / lang / "LC_MESSAGES").mkdir(parents=True)
        (tmp_path / lang / "LC_MESSAGES" / "x.po").write_text(_po(lang, body), "utf-8")
    loaded = load_translations(tmp_path)
    assert set(loaded) == {"en", "ru"}
    ru = loaded["ru"]
    assert ru.gettext("x.both") == "RU both"
    assert ru.gettext("x.en_only") == "EN only"
    assert ru.gettext("x.nowhere") == "x.nowhere"
    assert ru.ngettext("x.n", "x.n", 5) == "EN other"  # English's own rule picks the form
    assert ru.ngettext("x.gone", "x.gone", 5) == "x.gone"
    assert t("en", "no_such.key") == "no_such.key"
    assert t("xx", "menu.your_id", id=1) == t("en", "menu.your_id", id=1)


@pytest.mark.parametrize(
    ("chosen", "telegram", "expected"),
    [("ru", "en", "ru"), (None, "ru-RU", "ru"), (None, "de", "uz"), (None, None, "uz"), ("xx", "en", "en")],
)
def test_language_resolution(chosen: str | None, telegram: str | None, expected: str) -> None:
    assert resolve_language(chosen, telegram, "uz") == expected


# ---- plural forms are picked by the count ----------------------------------------------------------

PLURAL_KEY = "groups.added_n"  # a real key whose three Russian forms differ


@pytest.mark.parametrize(
    ("count", "form"),
    [(1, 0), (2, 1), (5, 2), (11, 2), (21, 0), (22, 1), (25, 2), (0, 2), (12, 2), (14, 2), (101, 0), (111, 2)],
)
def test_russian_picks_one_few_many(count: int, form: int) -> None:
    forms = catalog("ru")[PLURAL_KEY]
    assert len(set(forms)) == 3, "the Russian forms must differ for this test to tell them apart"
    expected = forms[form].format(count=count)
    assert t("ru", PLURAL_KEY, n=count, count=count) == expected
    assert Translator("ru").n(PLURAL_KEY, count, count=count) == expected


@pytest.mark.parametrize("lang", ["uz", "en"])
@pytest.mark.parametrize(("count", "form"), [(1, 0), (2, 1), (0, 1), (21, 1)])
def test_two_form_languages_pick_one_and_other(lang: str, count: int, form: int) -> None:
    forms = catalog(lang)[PLURAL_KEY]
    assert t(lang, PLURAL_KEY, n=count, count=count) == forms[form].format(count=count)


def test_english_singular_and_plural_differ() -> None:
    tr = Translator("en")
    assert tr.n(PLURAL_KEY, 1, count=1) != tr.n(PLURAL_KEY, 2, count=2).replace("2", "1")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_plural_message_renders_for_any_count(lang: str) -> None:
    plural = [key for key, forms in catalog(lang).items() if len(forms) > 1]
    assert len(plural) >= 10, "the counted messages are plural messages"
    for key in plural:
        names = placeholders(catalog(lang)[key][0])
        for count in (0, 1, 2, 3, 5, 11, 21, 22, 25, 100, 101):
            text = t(lang, key, n=count, **dict.fromkeys(names, count))
            assert text in {form.format(**dict.fromkeys(names, count)) for form in catalog(lang)[key]}, (key, count)


def test_the_workers_texts_do_not_load_aiogram() -> None:
    """The RQ workers send notices with `t` and stay without aiogram (jobs/__init__.py)."""
    code = ("import sys, core.i18n, jobs.notices, jobs.announce, worker.process; core.i18n.t('ru', 'notices.expired'); "
            "sys.exit(1 if 'aiogram' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=LOCALES.parent.parent, check=False).returncode == 0
