"""The solver package's shape: no import circles (imports inside functions and under
TYPE_CHECKING count as edges too), and no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import solver

PACKAGE = Path(solver.__file__).parent
MAX_LINES = 500


def _module(path: Path) -> str:
    return "solver" if path.stem == "__init__" else path.stem


def _edges() -> dict[str, set[str]]:
    modules = {_module(p) for p in PACKAGE.glob("*.py")}
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                if node.module == "solver":
                    out.update(a.name if a.name in modules else "solver" for a in node.names)
                elif node.module.startswith("solver."):
                    out.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "solver" or alias.name.startswith("solver."):
                        out.add(alias.name.split(".")[1] if "." in alias.name else "solver")
        edges[_module(path)] = (out & modules) - {_module(path)}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return [*path[path.index(n) :], n]
            if n not in state and (found := visit(n)) is not None:
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)) is not None:
            return found
    return None


def test_the_checker_finds_a_circle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles_in_the_solver_package() -> None:
    edges = _edges()
    assert edges["ilp"] >= {"ilp_model", "diagnose", "heuristic"}  # the graph is read
    assert _cycle(edges) is None


def test_no_solver_module_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
