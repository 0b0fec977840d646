"""Why no plan exists: the reason an infeasible plan carries.

First each app alone: an app that cannot be placed even on an empty fleet is named with
the constraint family that rules it out. When every app fits alone, apps are added in
scenario order until they stop fitting, and the shared resource whose relaxation would
let them fit is named.
"""

from __future__ import annotations

from solver import ilp
from solver.problem import Problem, SolveOptions

_FAMILIES = {
    "slo": "its slo_ms cannot be met",
    "cpu": "compute capacity (max_utilization)",
    "link": "link bandwidth (max_utilization)",
    "mem": "device memory",
    "bat": "battery over the horizon",
}


def _blocking_family(problem: Problem, options: SolveOptions, only: set[str]) -> str | None:
    for family in _FAMILIES:
        if ilp.feasible(problem, options, only, relax=frozenset({family})):
            return family
    return None


def explain_infeasible(problem: Problem, options: SolveOptions) -> str:
    apps = [a.id for a in problem.scenario.apps if a.id not in options.fixed]
    for app_id in apps:
        if ilp.feasible(problem, options, {app_id}):
            continue
        family = _blocking_family(problem, options, {app_id})
        if family == "slo":
            return f"app {app_id}: {_FAMILIES['slo']} on any placement"
        if family is not None:
            return f"app {app_id}: cannot be placed within {_FAMILIES[family]}"
        return f"app {app_id}: no placement satisfies its allowed_tiers, routes and limits together"
    placed: set[str] = set()
    for app_id in apps:
        placed.add(app_id)
        if ilp.feasible(problem, options, placed):
            continue
        family = _blocking_family(problem, options, placed)
        what = _FAMILIES.get(family or "", "shared capacity")
        if family == "slo":
            what = "latency targets under shared load"
        return f"app {app_id}: does not fit beside the apps before it ({what})"
    return "no plan satisfies every constraint"
