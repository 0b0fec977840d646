"""Placement solvers for scenario-v1: pure functions from a problem to a plan.

Every solver has the signature `solve(problem: Problem, options: SolveOptions) -> Plan`,
reads the clock only for its time limit, and is deterministic for a given seed.
`solve()` here picks one by name and times it.
"""

from __future__ import annotations

from solver.document import Plan, build_plan
from solver.evaluate import Evaluation, evaluate
from solver.plan import Placement, PlanDoc, Status
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.registry import SolverFn, solve, solvers
from solver.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "Code",
    "Evaluation",
    "Placement",
    "Plan",
    "PlanDoc",
    "Problem",
    "Reason",
    "Scenario",
    "ScenarioError",
    "SolveOptions",
    "SolverFn",
    "Status",
    "build_plan",
    "evaluate",
    "load_scenario",
    "parse_scenario",
    "solve",
    "solvers",
]
