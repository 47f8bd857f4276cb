"""Imports point down the layers, never up, and no two packages import each other.

The order, lowest first: `core` (settings and pure rules) < `db` (all SQL) < `userbot`, `services`
(the account gateway; steps spanning the stores and the gateway) < `worker` (the worker runtime: RQ
extended) < `jobs`, `legacy` (the job bodies and the tick; the import of the older bot's data) <
`handlers` (aiogram routers) < `api` (the web app) < `sandbox`, `devtools` (the emulator page; dev
tooling) < `tgcast_cli` (the command line: the composition root). A module may import its own layer
and the ones below. Every import counts, also those inside functions and under TYPE_CHECKING: a lazy
import is still a dependency. `tests/` and `bench/` stand outside and may import anything.

`jobs` sits above `worker` because job bodies take the job context the runtime gives them, while the
runtime runs them by the dotted names they are enqueued under, never importing them (as RQ itself
does). Of the runtime, `jobs` may import only its narrow interface (`WORKER_INTERFACE`).
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


# What `jobs` may import from `worker`: the job context (with `loop_job`, the warm shutdown's stop), the
# Bot API client the context carries, and the queues (job names and ids, enqueuing); the tick, which
# routes each cycle's first job, also asks where each account's connection is served. The rest (the RQ
# worker, its scheduler, the process, the group commit) is the runtime's own.
WORKER_INTERFACE = {"worker.context", "worker.botapi", "worker.queues"}
WORKER_INTERFACE_OF = {"jobs.tick": WORKER_INTERFACE | {"worker.own_queues"}}


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


def test_every_package_ships() -> None:
    """The wheel (pyproject's package list) and the image (the Dockerfile's COPY lines) hold every
    package of the product."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - OUTSIDE
    pyproject = (ROOT / "pyproject.toml").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert {p for p in packages if f'"{p}*"' not in pyproject} == set()
    assert {p for p in packages if f"COPY {p} {p}" not in dockerfile} == set()


def worker_imports(module: str, source: str) -> Iterator[tuple[str, int]]:
    """The modules of `worker` that `source` imports (`from worker import x` names worker.x)."""
    for name, line in imported(module, source):
        if name == "worker":
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.module == "worker" and node.lineno == line:
                    yield from ((f"worker.{alias.name}", line) for alias in node.names)
        elif name.split(".")[0] == "worker":
            yield ".".join(name.split(".")[:2]), line


def interface_violations(module: str, source: str) -> list[str]:
    allowed = WORKER_INTERFACE_OF.get(module, WORKER_INTERFACE)
    return [f"{module}:{line} imports {name}, not the job context or the queues"
            for name, line in worker_imports(module, source) if name not in allowed]


def test_jobs_use_the_runtime_through_its_narrow_interface() -> None:
    found = [v for module, path in product_modules() if module.split(".")[0] == "jobs"
             for v in interface_violations(module, path.read_text())]
    assert found == []


@pytest.mark.parametrize(
    ("module", "source", "bad"),
    [
        ("jobs.send_batch", "from worker.context import JobContext, loop_job\nfrom worker import queues\n", False),
        ("jobs.announce", "from worker.botapi import BotApiError\n", False),
        ("jobs.send_batch", "from worker.loop_worker import LoopWorker\n", True),
        ("jobs.announce", "from worker import process\n", True),
        ("jobs.announce", "def f():\n    import worker.scheduler\n", True),
        ("jobs.send_batch", "from worker.own_queues import home_queues\n", True),
        ("jobs.tick", "from worker import own_queues, queues\n", False),
    ],
)
def test_the_interface_check_tells_what_jobs_may_use(module: str, source: str, bad: bool) -> None:
    assert bool(interface_violations(module, source)) == bad


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
        ("worker.context", "from jobs.send_batch import send_batch\n", True),  # the runtime runs jobs by name
        ("jobs.send_batch", "from worker.context import loop_job\n", False),
        ("api.tick", "from jobs.tick import tick\nfrom services.outage import TRY_LATER\n", False),
        ("services.groups", "from userbot.gateway import GroupInfo\n", False),  # one layer
        ("sandbox.web", "from api.state import AppState\nfrom . import payments\n", False),
        ("tgcast_cli", "from sandbox.web import Sandbox\nfrom api.app import create_app\n", False),
    ],
)
def test_the_check_tells_up_from_down(module: str, source: str, bad: bool) -> None:
    assert bool(violations(module, source, set(LAYERS) | OUTSIDE)) == bad
