"""The solvers by name, and `solve`, which runs one and times it."""

from __future__ import annotations

import time
from collections.abc import Callable

from solver import baselines, ilp, polish
from solver.document import Plan
from solver.problem import Problem, SolveOptions
from solver.scenario import Scenario

SolverFn = Callable[[Problem, SolveOptions], Plan]


def solvers() -> dict[str, SolverFn]:
    """Every solver by name, the exact one first."""
    return {
        ilp.NAME: ilp.solve,
        polish.NAME: polish.solve,
        **baselines.SOLVERS,
    }


def solve(
    problem: Problem | Scenario, options: SolveOptions | None = None, solver: str = "ilp"
) -> Plan:
    """Run the named solver and record its wall time in the plan."""
    table = solvers()
    if solver not in table:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(table)}")
    if isinstance(problem, Scenario):
        problem = Problem(problem)
    start = time.perf_counter()
    plan = table[solver](problem, options or SolveOptions())
    plan.note("solve_s", time.perf_counter() - start)
    if plan.evaluation is not None:
        # What an incremental re-solve after a change evaluates its plan against.
        problem.derived["evaluation"] = plan.evaluation
    return plan


__all__ = ["SolverFn", "solve", "solvers"]
