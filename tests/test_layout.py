"""The house's rules, checked on the source: dependencies point inward, core is numpy + stdlib,
no import cycle between modules, one error tree, and modules of a readable size."""

from __future__ import annotations

import ast
import functools
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gateway"
# Inner parts first: a part may import only parts of a lower rank (and itself).
RANK = {
    "errors": 0,
    "core": 0,
    "fake": 0,
    "config": 1,
    "content": 2,
    "media": 3,
    "cache": 3,
    "observability": 4,
    "upstream": 4,
    "vectorstore": 4,
    "similar": 4.5,  # canonical keys and near reuse: content + cache below, the embedder above
    "embedder": 5,
    "api": 6,
    "bulk": 6.5,  # reuses the OpenAI input parsing; api/batch reaches it through a Protocol
    "app": 7,
    "server": 8,
    "cli": 9,
    "__main__": 10,
}


@functools.cache
def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_part_has_a_rank() -> None:
    parts = {_part(m) for m in _modules() if m != "gateway"}
    assert parts <= set(RANK), parts - set(RANK)


def test_dependencies_point_inward() -> None:
    wrong = []
    for module, tree in _modules().items():
        if module == "gateway":
            continue
        here = _part(module)
        for target in _imports(tree):
            there = _part(target) if target.startswith("gateway.") else ""
            if there in RANK and there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong


def test_core_imports_only_numpy_and_the_stdlib() -> None:
    allowed = set(sys.stdlib_module_names) | {"numpy", "gateway", "__future__"}
    for module, tree in _modules().items():
        if _part(module) == "core":
            roots = {name.split(".")[0] for name in _imports(tree)}
            assert roots <= allowed, (module, roots - allowed)


def test_no_import_cycle_between_modules() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, tree in modules.items():
        graph[module] = {t for t in _imports(tree) if t in modules and t != module}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if nxt.startswith(node + "."):
                continue  # a package's __init__ re-exporting its own modules
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in modules:
        if module not in state:
            visit(module, [])


def test_every_exception_class_lives_in_the_error_tree() -> None:
    stray = []
    for module, tree in _modules().items():
        if module in ("gateway.errors",) or module.startswith("gateway.fake"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                if any(b.endswith(("Error", "Exception")) for b in bases):
                    stray.append(f"{module}.{node.name}")
    assert not stray, stray


def test_no_utils_module_and_modules_stay_readable() -> None:
    for path in ROOT.rglob("*.py"):
        assert path.stem not in ("utils", "helpers", "misc"), path
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines"
