"""Placement solvers for scenario-v1: pure functions from a problem to a plan.

Every solver has the signature `solve(problem: Problem, options: SolveOptions) -> Plan`,
reads the clock only for its time limit, and is deterministic for a given seed.
`solve()` here picks one by name and times it.
"""

from __future__ import annotations

from solver.document import Plan, app_results, build_plan
from solver.evaluate import Evaluation, evaluate, fixed_worst_ms, least_within_mbps
from solver.held import base_evaluation
from solver.incremental import Change, apply_change, refigured
from solver.partial import Before, Partial, least_terms, place_what_fits, set_aside_first
from solver.plan import AppResult, Placement, PlanDoc, Segment, Stage, Status
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.registry import SolverFn, solve, solvers
from solver.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "AppResult",
    "Before",
    "Change",
    "Code",
    "Evaluation",
    "Partial",
    "Placement",
    "Plan",
    "PlanDoc",
    "Problem",
    "Reason",
    "Scenario",
    "ScenarioError",
    "Segment",
    "SolveOptions",
    "SolverFn",
    "Stage",
    "Status",
    "app_results",
    "apply_change",
    "base_evaluation",
    "build_plan",
    "evaluate",
    "fixed_worst_ms",
    "least_terms",
    "least_within_mbps",
    "load_scenario",
    "parse_scenario",
    "place_what_fits",
    "refigured",
    "set_aside_first",
    "solve",
    "solvers",
]
