"""The house's structural rules, read from the code's own imports (DESIGN.md, "Habits").

Import-linter (`make lint`) holds the layers between packages; these hold what it cannot
express: module size, circles between the modules of one package (type-only imports and
imports inside functions included: a circle of types is a circle of knowledge), and the
surfaces one package may use of another.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("solver", "models_registry", "orchestrator", "api", "agents", "cli", "simulate")
MAX_LINES = 500


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(module: str, path: Path) -> list[tuple[str, list[str], int]]:
    """Every import anywhere in the file (top level, inside functions, under
    TYPE_CHECKING), as (imported module, names taken from it, line)."""
    is_package = path.name == "__init__.py"
    out: list[tuple[str, list[str], int]] = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, [alias.name for alias in node.names], node.lineno))
    return out


def _graph(package: str) -> nx.DiGraph:
    """Module -> module edges inside one package."""
    modules = _modules(package)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for module, path in modules.items():
        for target, names, _ in _imports(module, path):
            if target not in modules:
                continue
            # `from pkg import sub` imports the submodule, not the package's __init__.
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
            for dest in subs or [target]:
                if dest != module:
                    graph.add_edge(module, dest)
            if names and len(subs) < len(names) and subs:
                graph.add_edge(module, target)  # other names come from the __init__
    return graph


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_500_lines(package: str) -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _modules(package).values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle_between_modules_of_a_package(package: str) -> None:
    graph = _graph(package)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not circles, f"import circles in {package}: {circles}"


def test_the_api_imports_no_orm_tables_and_no_sqlalchemy() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for module, path in _modules("api").items()
        for target, _, line in _imports(module, path)
        if target.split(".")[0] == "sqlalchemy" or target.startswith("orchestrator.db")
    ]
    assert not found, "\n".join(found)


def test_the_orchestrator_uses_only_the_solvers_public_names() -> None:
    import solver

    public = set(solver.__all__)
    found: list[str] = []
    for module, path in _modules("orchestrator").items():
        for target, names, line in _imports(module, path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if target.startswith("solver."):
                found.append(f"{where} imports the solver's internal module {target}")
            elif target == "solver":
                found.extend(
                    f"{where} imports solver.{n}, which is not in solver.__all__"
                    for n in names
                    if n not in public
                )
    assert not found, "\n".join(found)


def test_the_checks_see_the_imports_they_judge() -> None:
    """The graph is not empty by accident: known edges of today's code are in it."""
    graph = _graph("orchestrator")
    assert graph.number_of_edges() > 20
    assert ("orchestrator.reconcile", "orchestrator.triggers") in graph.edges
