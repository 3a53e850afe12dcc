"""The package's import graph: no cycles, and the layering the pipeline implies.

Walks every module's import statements outside functions (the in-function ones are the
documented lazy imports of optional extras), so a rule holds for what ``import`` really
loads: a module, the packages above it, and everything they import in turn.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "gptlab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PKG.rglob("*.py")}


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _top_level_imports(tree: ast.AST) -> list[ast.stmt]:
    """Import statements that run at import time: at module level or in a module-level
    if/try block, never inside a function or class body."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try)):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + \
                [s for h in getattr(node, "handlers", []) for s in h.body]
    return found


@cache
def direct_imports(name: str) -> frozenset[str]:
    out: set[str] = set(p for p in _parents(name) if p in MODULES)
    for node in _top_level_imports(ast.parse(MODULES[name].read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for t in targets:
            if t in MODULES:
                out.add(t)
                out.update(p for p in _parents(t) if p in MODULES)
    out.discard(name)
    return frozenset(out)


@cache
def closure(name: str) -> frozenset[str]:
    seen, todo = set(), [name]
    while todo:
        for dep in direct_imports(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    seen.discard(name)
    return frozenset(seen)


def _in(name: str, package: str) -> bool:
    return name == f"gptlab.{package}" or name.startswith(f"gptlab.{package}.")


def test_no_import_cycles():
    cycles = sorted(m for m in MODULES if m in closure(m) and m != "gptlab")
    assert not cycles, f"modules that import themselves through others: {cycles}"


@pytest.mark.parametrize("package, forbidden", [
    ("model", ("data", "train", "cli", "sources", "pack", "eval")),
    ("data", ("train", "model", "cli")),
    ("eval", ("train", "cli")),
    ("sources", ("train", "model", "cli")),
    ("pack", ("train", "model", "cli")),
    ("tokenizer", ("train", "model", "cli")),
])
def test_layering(package, forbidden):
    bad = sorted({(m, dep) for m in MODULES if _in(m, package)
                  for dep in closure(m) if any(_in(dep, f) for f in forbidden)})
    assert not bad, f"{package}/ must not import {forbidden}: {bad[:10]}"


def test_no_library_module_imports_the_cli():
    assert not [m for m in MODULES if m != "gptlab.cli" and "gptlab.cli" in closure(m)]


def test_schema_and_errors_are_leaves():
    assert direct_imports("gptlab.errors") <= {"gptlab"}
    assert direct_imports("gptlab.schema") <= {"gptlab", "gptlab.errors"}


def test_the_graph_is_read_at_all():
    # A guard for the walker itself: known edges are found.
    assert "gptlab.model.gpt" in closure("gptlab.train.loop")
    assert "gptlab.schema" in closure("gptlab.config")
