"""Imports point down the layers, never up, and no two packages import each other.

The order, lowest first: `core` (settings and pure rules) < `db` (all SQL) < `userbot`, `services`
(the account gateway; steps spanning the stores and the gateway) < `jobs`, `legacy` (RQ jobs and the
worker; the import of the older bot's data) < `handlers` (aiogram routers) < `api` (the web app) <
`sandbox`, `devtools` (the emulator page; dev tooling) < `tgcast_cli` (the command line: the
composition root). A module may import its own layer and the ones below. Every import counts, also
those inside functions and under TYPE_CHECKING: a lazy import is still a dependency. `tests/` and
`bench/` stand outside and may import anything.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = {"tests", "bench"}
LAYERS = {
    "core": 0,
    "db": 1,
    "userbot": 2,
    "services": 2,
    "worker": 3,
    "jobs": 4,
    "legacy": 4,
    "handlers": 5,
    "api": 6,
    "sandbox": 7,
    "devtools": 7,
    "tgcast_cli": 8,
}


def top_level_names() -> set[str]:
    """The repository's own packages and top-level modules (what an import of ours can start with)."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    modules = {p.stem for p in ROOT.glob("*.py")}
    return packages | modules


def product_modules() -> Iterator[tuple[str, Path]]:
    for name in sorted(top_level_names() - OUTSIDE):
        single = ROOT / f"{name}.py"
        if single.exists():
            yield name, single
            continue
        for path in sorted((ROOT / name).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported(module: str, source: str, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Every module `source` imports, absolute, with its line."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            yield name, node.lineno


def violations(module: str, source: str, ours: set[str], is_package: bool = False) -> list[str]:
    """Imports of a higher layer by `module` (one line each)."""
    layer = LAYERS[module.split(".")[0]]
    found = []
    for name, line in imported(module, source, is_package):
        top = name.split(".")[0]
        if top in ours and top not in OUTSIDE and LAYERS[top] > layer:
            found.append(f"{module}:{line} imports {name} ({top} is above {module.split('.')[0]})")
        elif top in OUTSIDE:
            found.append(f"{module}:{line} imports {name} ({top} is not part of the product)")
    return found


def test_every_package_has_a_layer() -> None:
    assert top_level_names() - OUTSIDE == set(LAYERS), "place the new package in LAYERS (and in its docstring)"


def test_no_module_imports_a_higher_layer() -> None:
    ours = top_level_names()
    found = [v for module, path in product_modules()
             for v in violations(module, path.read_text(), ours, path.name == "__init__.py")]
    assert found == []


def test_no_two_packages_import_each_other() -> None:
    ours = top_level_names()
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in product_modules():
        for name, _ in imported(module, path.read_text(), path.name == "__init__.py"):
            top = name.split(".")[0]
            if top in ours and top != module.split(".")[0]:
                edges[module.split(".")[0]].add(top)
    cycles = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert cycles == []


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("core.outcomes", "from userbot.gateway import GatewayError\n", True),
        ("core.rules", "def f():\n    import api.app\n", True),  # lazy imports count
        ("db.groups", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from services import x\n", True),
        ("api.app", "from sandbox.web import Sandbox\n", True),
        ("worker.process", "from tests.worker_faults import main\n", True),
        ("api.tick", "from jobs.tick import tick\nfrom services.outage import TRY_LATER\n", False),
        ("services.groups", "from userbot.gateway import GroupInfo\n", False),  # one layer
        ("sandbox.web", "from api.state import AppState\nfrom . import payments\n", False),
        ("tgcast_cli", "from sandbox.web import Sandbox\nfrom api.app import create_app\n", False),
    ],
)
def test_the_check_tells_up_from_down(module: str, source: str, bad: bool) -> None:
    assert bool(violations(module, source, set(LAYERS) | OUTSIDE)) == bad
