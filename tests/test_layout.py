"""The house's rooms by role: every import runs down a floor (docs/layout.md), no module imports itself back, and the
ground floor and the reports work without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.data import REPO

PACKAGE = REPO / "garbage_lit"
# Lowest first; a room may import its own floor's modules only when they are its own (data from data), and any room
# on a lower floor. docs/layout.md draws the same tree.
FLOORS = [
    {"errors", "records"},                       # the ground: no torch
    {"config"},                                  # the config's checks and key hints
    {"data", "report", "search"},                # the data index and loaders; the reports (no torch); the search
    {"models"},
    {"training"},
    {"features"},
    {"insight"},
    {"loggers"},
    {"callbacks"},
    {"run"},                                     # orchestration only
    {"train", "evaluate", "predict", "export", "audit", "__init__"},   # the commands
]
FLOOR = {room: level for level, rooms in enumerate(FLOORS) for room in rooms}


def _modules() -> dict[str, Path]:
    return {".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): path
            for path in PACKAGE.rglob("*.py")}


def _imports(path: Path, module: str) -> set[str]:
    """The garbage_lit modules ``path`` imports (at its top and inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name if name in _modules() else node.module for name in names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("garbage_lit") and name != module}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def test_every_room_has_a_floor():
    rooms = {_room(module) for module in _modules()}
    assert rooms - set(FLOOR) == set(), "add the new room to FLOORS here and to docs/layout.md"


def test_imports_run_only_downward():
    upward = []
    for module, path in _modules().items():
        room = _room(module)
        for target in _imports(path, module):
            other = _room(target)
            if other != room and FLOOR[other] >= FLOOR[room]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_module_imports_itself_back():
    graph = {module: _imports(path, module) & set(_modules()) for module, path in _modules().items()}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for target in graph[module]:
            if target in trail:
                cycles.append(" -> ".join([*trail[trail.index(target):], target]))
            elif len(trail) < 12:
                visit(target, [*trail, target])

    for start in graph:
        visit(start, [start])
    assert cycles == []


@pytest.mark.parametrize("module", ["garbage_lit.records.folder", "garbage_lit.records.tables",
                                    "garbage_lit.records.predictions", "garbage_lit.report.__main__"])
def test_the_ground_floor_and_the_reports_import_no_torch(module):
    probe = f"import sys, {module}; print(sorted(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
