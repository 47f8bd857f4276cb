"""The repository documents itself: what someone who clones it reads must be in it.

- No tracked file points outside the repository for its contract (a sibling folder of shared
  specifications) or at tracker numbers (an issue, a ticket, a pull request by number): neither exists
  for someone who clones it. The project's own documents are docs/bot.md and docs/runtime.md.
- Every reference of the form `docs/<name>.md, "<section>"` names a document that exists and a heading
  it has, so references do not rot when a section is renamed.
- Every setting `core.settings.Settings` reads, and every callback id and conversation state the
  handlers use, is named in docs/ (docs/runtime.md, "Settings" and docs/bot.md hold the core ones; a
  feature may document its own in a document of its own); docs/parity.md follows bot.md's sections and
  names tests that exist.

Pure file checks: no database, no network.
"""

from __future__ import annotations

import ast
import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
from aiogram.fsm.state import StatesGroup

from core.settings import Settings
from handlers import callbacks, states

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Written in pieces (and the samples below built from numbers) so that a grep for such references
# does not find this file.
_OUTSIDE = re.compile("|".join([r"\.\./" + "shared", r"\bshared" + "/spec"]))
_TRACKER = re.compile(
    # "issue N", "issues N and M", "ticket #N", "PR N", "pull request #N"
    r"\b(?:issues?|tickets?|PRs?|pull\s+requests?)\s*#?\d+\b"
    # a bare "#N" in prose: after a space, a bracket or the line start, before a space, a closing
    # bracket or punctuation (not ";", which ends a CSS colour such as "#fff;")
    r"|(?:^|(?<=[\s(\[]))#\d{1,5}(?=[\s).,:\]]|$)",
    re.IGNORECASE | re.MULTILINE,
)
# Files whose "#" and digits are colours or digests, not tracker numbers.
_NO_BARE_NUMBERS = {".css", ".svg", ".lock"}


@cache
def tracked_files() -> tuple[Path, ...]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (git ls-files failed)")
    return tuple(ROOT / name for name in out.decode().split("\0") if name)


def text_of(path: Path) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError:  # listed but removed in the working tree
        return None
    if b"\0" in raw:
        return None  # binary
    return raw.decode("utf-8", errors="replace")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def test_no_file_points_outside_the_repository_or_at_tracker_numbers() -> None:
    found = []
    for path in tracked_files():
        text = text_of(path) if path != Path(__file__).resolve() else None  # this file holds samples
        if text is None:
            continue
        rel = path.relative_to(ROOT)
        for match in _OUTSIDE.finditer(text):
            found.append(f"{rel}:{_line(text, match.start())}: {match.group(0)!r}")
        for match in _TRACKER.finditer(text):
            if match.group(0).startswith("#") and path.suffix in _NO_BARE_NUMBERS:
                continue
            found.append(f"{rel}:{_line(text, match.start())}: {match.group(0)!r}")
    assert not found, "cite docs/bot.md or docs/runtime.md (and a section) instead:\n" + "\n".join(found)


def test_the_patterns_catch_what_they_are_for() -> None:
    for outside in ("see ../" + "shared" + "/spec/x.md", "../" + "shared" + "/ARCH.md", "the shared" + "/spec folder"):
        assert _OUTSIDE.search(outside), outside
    assert not _OUTSIDE.search("docs/bot.md, shared state in Redis")
    n = 6
    for text in (f"(issue {n}, item 2)", f"Issue {n}3", f"issues {n}", f"ticket #{n}2", f"PR {n}",
                 f"fixed in #{n}2.", f"see #{n})", f"#{n}5 at the start"):
        assert _TRACKER.search(text), text
    for text in (f"color: #{n}{n}{n};", "background: #e9eef2;", "fill=\"#ee90fa\"", f"rule {n}", f"item {n}",
                 "docs/runtime.md, \"Worker\"", f"pages = {n}0", f"x#{n}2", f"&#{n}0;"):
        assert not _TRACKER.search(text), text


# ---- references into docs/ stay valid ---------------------------------------------------------------

# `docs/runtime.md, "Pruning"`, also wrapped over a comment or docstring line break.
_SECTION_REF = re.compile(r'docs/([\w-]+\.md),\s*(?:#\s*)?"([^"\n]+)"')


def _headings(doc: Path) -> list[str]:
    return [line.lstrip("#").strip().replace("`", "") for line in doc.read_text().splitlines()
            if line.startswith("#")]


def test_every_section_reference_names_an_existing_heading() -> None:
    broken = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for match in _SECTION_REF.finditer(text):
            doc, section = DOCS / match.group(1), match.group(2).replace("`", "")
            where = f"{path.relative_to(ROOT)}:{_line(text, match.start())}"
            if not doc.exists():
                broken.append(f"{where}: no {doc.relative_to(ROOT)}")
            elif not any(h == section or h.startswith(section + ":") or h.startswith(section + " ")
                         for h in _headings(doc)):
                broken.append(f"{where}: {doc.name} has no section {section!r}")
    assert not broken, "\n".join(broken)


# ---- paths named in the documents exist ------------------------------------------------------------

# A path into the repository (`worker/process.py`, `db/migrations/`), not part of a URL or a longer path.
_PATH = re.compile(r"(?<![\w./:-])((?:api|bench|core|db|devtools|docs|handlers|infra|jobs|legacy|sandbox|services"
                   r"|tests|userbot|worker)/[\w./-]*[\w/])")


def test_every_path_the_documents_name_exists() -> None:
    """A module moved or renamed must take the documents with it."""
    documents = [*sorted(DOCS.glob("*.md")), ROOT / "README.md", ROOT / "bench" / "NOTES.md"]
    missing = [f"{doc.relative_to(ROOT)}:{_line(doc.read_text(), m.start())}: {m.group(1)}"
               for doc in documents for m in _PATH.finditer(doc.read_text())
               if not (ROOT / m.group(1)).exists() and not any(ROOT.glob(m.group(1) + ".*"))]  # `page.*`
    assert not missing, "\n".join(missing)


def test_the_path_pattern_finds_paths_only() -> None:
    found = [m.group(1) for m in _PATH.finditer(
        "`worker/process.py`, db/migrations/ and jobs/tick.py. https://docs.rs/x core/locales/<lang>/x.po")]
    assert found == ["worker/process.py", "db/migrations/", "jobs/tick.py", "core/locales/"]


# ---- the documents cover what the code has -----------------------------------------------------------


def _all_docs() -> str:
    return "\n".join(doc.read_text() for doc in sorted(DOCS.glob("*.md")))


def test_every_setting_is_documented() -> None:
    runtime = (DOCS / "runtime.md").read_text()
    assert "`DATABASE_URL`" in runtime and "`CLAIM_AHEAD_MS`" in runtime  # the core list lives there
    docs = _all_docs()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in docs]
    assert not missing, f"no document in docs/ lists the settings {missing} (docs/runtime.md, \"Settings\")"


def _callback_factories() -> list[type[callbacks.CallbackData]]:
    return [obj for obj in vars(callbacks).values()
            if isinstance(obj, type) and issubclass(obj, callbacks.CallbackData) and obj is not callbacks.CallbackData]


def test_every_callback_id_and_factory_is_documented() -> None:
    doc = _all_docs()
    factories = _callback_factories()
    assert len(factories) >= 40  # the module was read, not an empty namespace
    missing = []
    for factory in factories:
        prefix = factory.__prefix__
        if not re.search(rf"`{re.escape(prefix)}(?:`|:)", doc):
            missing.append(prefix)
        if f"`{factory.__name__}`" not in doc:
            missing.append(factory.__name__)
    assert not missing, f"no document in docs/ names {missing} (docs/bot.md, \"Callback ids at a glance\")"


def test_every_conversation_state_is_documented() -> None:
    doc = _all_docs()
    groups = [obj for obj in vars(states).values()
              if isinstance(obj, type) and issubclass(obj, StatesGroup) and obj is not StatesGroup]
    names = [state.state for group in groups for state in group.__all_states__ if state.state]
    assert len(names) >= 7  # the module was read
    missing = [name for name in names if name.replace(":", ".") not in doc]
    assert not missing, f"no document in docs/ names {missing} (docs/bot.md, \"Conversation states\")"


def test_parity_md_follows_bot_md_and_names_tests_that_exist() -> None:
    parity = (DOCS / "parity.md").read_text()
    bot_sections = {line[3:].strip() for line in (DOCS / "bot.md").read_text().splitlines()
                    if line.startswith("## ")}
    strays = [line[3:].strip() for line in parity.splitlines()
              if line.startswith("## ") and line[3:].strip() not in bot_sections]
    assert not strays, f"docs/parity.md sections that docs/bot.md does not have: {strays}"

    missing = []
    for row in parity.splitlines():
        current: str | None = None
        for file_name, test_name in re.findall(r"`(?:(test_\w+\.py))?::(test_\w+)", row):
            current = file_name or current
            if current is None:
                missing.append(f"{test_name} (no file named before it)")
            elif test_name not in _test_names(current):
                missing.append(f"{current}::{test_name}")
    assert not missing, f"docs/parity.md names tests that do not exist: {missing}"


@cache
def _test_names(file_name: str) -> frozenset[str]:
    path = ROOT / "tests" / file_name
    if not path.exists():
        return frozenset()
    tree = ast.parse(path.read_text())
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def test_the_docs_say_choosing_the_interval_starts_the_broadcast() -> None:
    """As the product does (test_journey_broadcast.py::test_preset_interval_starts_the_broadcast): no
    document may send a newcomer looking for a Start to press after picking the interval."""
    start_after_interval = re.compile(r"interval\W+(?:\w+\W+){0,3}(?:and|then)\s+press\s+\W*Start", re.IGNORECASE)
    for path in (ROOT / "README.md", DOCS / "bot.md"):
        text = " ".join(path.read_text().split())
        assert not start_after_interval.search(text), f"{path.name} says to press Start after the interval"
    bot = " ".join((DOCS / "bot.md").read_text().split())
    assert "Choosing the interval (`set_interval:<m>`, or a number after `set_interval_custom`) is what starts" in bot
