"""Placeholder replaced by the baselines."""

from __future__ import annotations

from collections.abc import Callable

from solver.plan import Plan
from solver.problem import Problem, SolveOptions

SOLVERS: dict[str, Callable[[Problem, SolveOptions], Plan]] = {}
