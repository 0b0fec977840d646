"""Why no plan exists: the reason an infeasible plan carries, with its code.

First each app alone: an app that cannot be placed even on an empty fleet is named with
the constraint family that rules it out (the one whose relaxation alone lets it fit; else
the families that must all be relaxed; else its tiers and routes). When every app fits
alone, the shortest prefix of the apps (in scenario order) that does not fit is found by
bisection, and its last app is named with the shared resource whose relaxation would let
the prefix fit. Every check runs within what is left of the solve's time limit; when the
limit comes first the reason says so (`time_limit`), and blames no app.
"""

from __future__ import annotations

from solver import ilp_model
from solver.evaluate import evaluate
from solver.ilp_model import Deadline
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason

_FAMILIES = {
    Code.SLO: "its slo_ms",
    Code.COMPUTE: "compute capacity (max_utilization)",
    Code.BANDWIDTH: "link bandwidth (max_utilization)",
    Code.MEMORY: "device memory",
    Code.BATTERY: "battery over the horizon beside its idle draw",
}
UNDECIDED = Reason(
    Code.TIME_LIMIT, "no plan satisfies every constraint (the time limit stopped the diagnosis)"
)


class _Undecided(Exception):
    """The time limit stopped a check before it could say yes or no."""


def _fits(
    problem: Problem,
    options: SolveOptions,
    only: set[str],
    deadline: Deadline,
    relax: frozenset[Code] = frozenset(),
) -> bool:
    fits = ilp_model.feasible(problem, options, only, deadline.left(), relax)
    if fits is None:
        raise _Undecided
    return fits


def _blocking(
    problem: Problem, options: SolveOptions, only: set[str], deadline: Deadline
) -> list[Code]:
    """The family whose relaxation alone lets `only` fit; else the fewest families, in
    order, that must all be relaxed; [] when relaxing every family does not help."""
    for family in _FAMILIES:
        if _fits(problem, options, only, deadline, frozenset({family})):
            return [family]
    relaxed: list[Code] = []
    for family in _FAMILIES:
        relaxed.append(family)
        if _fits(problem, options, only, deadline, frozenset(relaxed)):
            # Put back the ones it fits without, earliest first.
            for other in list(relaxed[:-1]):
                fewer = frozenset(f for f in relaxed if f != other)
                if _fits(problem, options, only, deadline, fewer):
                    relaxed.remove(other)
            return relaxed
    return []


def _alone(problem: Problem, app_id: str, families: list[Code]) -> Reason:
    """Why one app cannot be placed even on an empty fleet."""
    app = problem.cost.apps[app_id]
    if app.variants is not None and not problem.model_options(app):
        return Reason(Code.ACCURACY, f"app {app_id}: no variant meets min_accuracy", app_id)
    if families == [Code.SLO]:
        return Reason(Code.SLO, f"app {app_id}: its slo_ms cannot be met on any placement", app_id)
    if families:
        what = " and ".join(_FAMILIES[f] for f in families)
        together = " together" if len(families) > 1 else ""
        # The code is the first family, in `_FAMILIES`' order (the SLO first): the
        # heuristic, whose per-app search meets the SLO before it books capacity, names
        # the same one when several bind together.
        return Reason(
            families[0], f"app {app_id}: cannot be placed within {what}{together}", app_id
        )
    if not problem.hosts(app):
        return Reason(
            Code.TIER,
            f"app {app_id}: no device of its allowed_tiers {list(app.allowed_tiers)}",
            app_id,
        )
    return Reason(
        Code.UNREACHABLE,
        f"app {app_id}: no device of its allowed_tiers has routes from its source and to its sink",
        app_id,
    )


def explain_infeasible(problem: Problem, options: SolveOptions, deadline: Deadline) -> Reason:
    try:
        return _explain(problem, options, deadline)
    except _Undecided:
        return UNDECIDED


def _explain(problem: Problem, options: SolveOptions, deadline: Deadline) -> Reason:
    apps = [a.id for a in problem.scenario.apps if a.id not in options.fixed]
    for app_id in apps:
        if not _fits(problem, options, {app_id}, deadline):
            return _alone(problem, app_id, _blocking(problem, options, {app_id}, deadline))
    if not apps:
        return _held_apart(problem, options)
    # The shortest infeasible prefix: apps[:hi] does not fit, apps[:lo] does.
    lo, hi = 1, len(apps)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(problem, options, set(apps[:mid]), deadline):
            lo = mid
        else:
            hi = mid
    families = _blocking(problem, options, set(apps[:hi]), deadline)
    blamed = apps[hi - 1]
    if families == [Code.SLO]:
        what = "latency targets under shared load"
    else:
        what = " and ".join(_FAMILIES[f] for f in families) or "shared capacity"
    code = families[-1] if families else Code.STRUCTURE
    return Reason(code, f"app {blamed}: does not fit beside the apps before it ({what})", blamed)


def _held_apart(problem: Problem, options: SolveOptions) -> Reason:
    """Every app is held fixed and they break a shared limit together: the first one."""
    found = evaluate(problem.cost, options.fixed, require_all=False).found
    first = found[0] if found else None
    code = first.code if first is not None else Code.STRUCTURE
    detail = f": {first.message}" if first is not None else ""
    return Reason(code, f"the apps held in place do not fit together{detail}")


__all__ = ["UNDECIDED", "explain_infeasible"]
