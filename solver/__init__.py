"""Placement solvers for scenario-v1: pure functions from a problem to a plan.

Every solver has the signature `solve(problem: Problem, options: SolveOptions) -> Plan`,
reads the clock only for its time limit, and is deterministic for a given seed.
`solve()` here picks one by name and times it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from solver.document import Plan, build_plan
from solver.evaluate import Evaluation, evaluate
from solver.plan import Placement, PlanDoc, Status
from solver.problem import Problem, SolveOptions
from solver.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

SolverFn = Callable[[Problem, SolveOptions], Plan]


def solvers() -> dict[str, SolverFn]:
    """Every solver by name, the exact one first."""
    from solver import baselines, heuristic, ilp

    return {
        ilp.NAME: ilp.solve,
        heuristic.NAME: heuristic.solve,
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
    plan.doc.solve_s = time.perf_counter() - start
    if plan.evaluation is not None:
        # What an incremental re-solve after a change evaluates its plan against.
        problem.derived["evaluation"] = plan.evaluation
    return plan


__all__ = [
    "Evaluation",
    "Placement",
    "Plan",
    "PlanDoc",
    "Problem",
    "Scenario",
    "ScenarioError",
    "SolveOptions",
    "Status",
    "build_plan",
    "evaluate",
    "load_scenario",
    "parse_scenario",
    "solve",
    "solvers",
]
