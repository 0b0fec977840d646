"""Why no plan exists: the reason an infeasible plan carries.

First each app alone: an app that cannot be placed even on an empty fleet is named with
the constraint family that rules it out. When every app fits alone, the shortest prefix
of the apps (in scenario order) that does not fit is found by bisection, and its last
app is named with the shared resource whose relaxation would let the prefix fit. Every
check runs within what is left of the solve's time limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver import ilp
from solver.problem import Problem, SolveOptions

if TYPE_CHECKING:
    from solver.ilp import Deadline

_FAMILIES = {
    "slo": "its slo_ms cannot be met",
    "cpu": "compute capacity (max_utilization)",
    "link": "link bandwidth (max_utilization)",
    "mem": "device memory",
    "bat": "battery over the horizon",
}
_UNDECIDED = "no plan satisfies every constraint (the time limit stopped the diagnosis)"


class _Undecided(Exception):
    """The time limit stopped a check before it could say yes or no."""


def _blocking_family(
    problem: Problem, options: SolveOptions, only: set[str], deadline: Deadline
) -> str | None:
    """The family whose relaxation alone lets `only` fit; None when none does."""
    for family in _FAMILIES:
        fits = ilp.feasible(problem, options, only, deadline.left(), frozenset({family}))
        if fits is None:
            raise _Undecided
        if fits:
            return family
    return None


def explain_infeasible(problem: Problem, options: SolveOptions, deadline: Deadline) -> str:
    try:
        return _explain(problem, options, deadline)
    except _Undecided:
        return _UNDECIDED


def _explain(problem: Problem, options: SolveOptions, deadline: Deadline) -> str:
    apps = [a.id for a in problem.scenario.apps if a.id not in options.fixed]
    for app_id in apps:
        fits = ilp.feasible(problem, options, {app_id}, deadline.left())
        if fits is None:
            return _UNDECIDED
        if fits:
            continue
        family = _blocking_family(problem, options, {app_id}, deadline)
        if family == "slo":
            return f"app {app_id}: {_FAMILIES['slo']} on any placement"
        if family is not None:
            return f"app {app_id}: cannot be placed within {_FAMILIES[family]}"
        return f"app {app_id}: no placement satisfies its allowed_tiers, routes and limits together"
    if not apps:
        return "the apps held in place do not fit together"
    # The shortest infeasible prefix: apps[:hi] does not fit, apps[:lo] does.
    lo, hi = 1, len(apps)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        fits = ilp.feasible(problem, options, set(apps[:mid]), deadline.left())
        if fits is None:
            return _UNDECIDED
        if fits:
            lo = mid
        else:
            hi = mid
    prefix = set(apps[:hi])
    family = _blocking_family(problem, options, prefix, deadline)
    what = _FAMILIES.get(family or "", "shared capacity")
    if family == "slo":
        what = "latency targets under shared load"
    return f"app {apps[hi - 1]}: does not fit beside the apps before it ({what})"
