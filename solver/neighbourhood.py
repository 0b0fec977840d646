"""Large-neighbourhood search around saturated resources, for the heuristic's polish.

Where a shared resource (a device's compute or battery, a link) is full, the greedy's
per-app choices interact: one app could move off the camera's battery only if another
moved off the uplink, and no one-app change pays. So the neighbourhoods are the apps that
use a saturated resource: each is freed together, every other app held where it is, and
the exact model (the caller's, `solver.polish.polish`) re-places the group optimally
within a node limit. The groups are small (the apps of one camera, one edge box, one
uplink), so each exact model is small; a neighbourhood is kept only when the evaluator's
objective drops, so the plan stays feasible at every step. Deterministic: neighbourhoods
are visited in a fixed order (fullest resource first), each model stops at a node limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from solver.document import Plan
from solver.fastcost import Fleet, Scorer
from solver.plan import Status
from solver.problem import Problem, SolveOptions

SATURATED = 0.9  # share of a limit above which a resource counts as saturated
MAX_GROUP = 10  # apps freed at once; a larger group keeps its heaviest users
NODES = 300  # branch-and-bound nodes per neighbourhood
GROUPS = 8  # neighbourhoods tried per round
ROUNDS = 2
_TOL = 1e-7  # relative: an app this close to its own bound is at its optimum


def slack(
    problem: Problem, options: SolveOptions, fleet: Fleet, plan: Plan, lower: Mapping[str, float]
) -> dict[str, float]:
    """How far each free app's cost sits above its own lower bound, for the apps above it
    (every free app, at infinite slack, when the bounds are not known). An app at its
    bound cannot gain from any move; a plan whose apps all are is optimal."""
    scorer = Scorer(fleet, problem.migration)
    out: dict[str, float] = {}
    for app in problem.scenario.apps:
        placement = plan.placements.get(app.id)
        if app.id in options.fixed or placement is None:
            continue
        bound = lower.get(app.id)
        if bound is None or not np.isfinite(bound):
            out[app.id] = float("inf")
            continue
        gap = scorer.score(app, placement).objective - bound
        if gap > _TOL * max(1.0, abs(bound)):
            out[app.id] = gap
    return out


def resource_use(
    problem: Problem, fleet: Fleet, plan: Plan
) -> tuple[np.ndarray, dict[int, dict[str, float]]]:
    """Each resource's use by the plan, and per resource the amount each app uses."""
    scorer = Scorer(fleet, problem.migration)
    load = np.zeros(len(fleet.capacity))
    users: dict[int, dict[str, float]] = {}
    for app in problem.scenario.apps:
        placement = plan.placements.get(app.id)
        if placement is None:
            continue
        sc = scorer.score(app, placement)
        load[sc.resources] += sc.amounts
        for r, amount in zip(sc.resources.tolist(), sc.amounts.tolist(), strict=True):
            if amount > 0:
                users.setdefault(int(r), {})[app.id] = amount
    return load, users


def neighbourhoods(
    problem: Problem, options: SolveOptions, fleet: Fleet, plan: Plan
) -> list[frozenset[str]]:
    """The groups of free apps that share a saturated resource, fullest resource first;
    memory is left out (a full memory seldom has a cheaper arrangement), as are groups of
    one app (the one-app best response covers those)."""
    load, users = resource_use(problem, fleet, plan)
    cap = fleet.capacity
    n = fleet.n
    share = np.where(cap > 0, load / np.where(cap > 0, cap, 1.0), 0.0)
    out: list[frozenset[str]] = []
    for r in np.argsort(-share, kind="stable").tolist():
        if share[r] < SATURATED:
            break
        if n <= r < 2 * n:
            continue
        free = {a: u for a, u in users.get(r, {}).items() if a not in options.fixed}
        heaviest = sorted(free, key=lambda a: (-free[a], a))[:MAX_GROUP]
        group = frozenset(heaviest)
        if len(group) > 1 and group not in out:
            out.append(group)
    return out


Reoptimise = Callable[[SolveOptions, Plan, float, int], "Plan | None"]


def search(
    problem: Problem,
    options: SolveOptions,
    fleet: Fleet,
    plan: Plan,
    lower: Mapping[str, float],
    time_limit_s: float,
    reoptimise: Reoptimise,
) -> Plan | None:
    """A better plan than `plan` from re-placing saturated neighbourhoods exactly, or None.

    `reoptimise(held, incumbent, seconds, nodes)` is the caller's exact model: a plan
    better than the incumbent with the apps in `held.fixed` kept where they are, or None.
    A few rounds, until one improves nothing; each recomputes the saturated resources of
    the plan in hand and tries the first `GROUPS` neighbourhoods with an app above its own
    bound (`lower`, see `slack`). The clock is only a safety net."""
    if plan.status == Status.INFEASIBLE or plan.doc.objective is None:
        return None
    end = time.process_time() + time_limit_s  # CPU time, as the polish's budget
    current, improved = plan, False
    tried: set[tuple[frozenset[str], float]] = set()
    for _ in range(ROUNDS):
        progress = False
        loose = slack(problem, options, fleet, current, lower)
        groups = [g for g in neighbourhoods(problem, options, fleet, current) if g & loose.keys()]
        for group in groups[:GROUPS]:
            left = end - time.process_time()
            if left <= 0.05:
                return current if improved else None
            assert current.doc.objective is not None
            key = (group, current.doc.objective)
            if key in tried:
                continue
            tried.add(key)
            held = {k: v for k, v in current.placements.items() if k not in group}
            better = reoptimise(replace(options, fixed=held), current, left, NODES)
            if better is not None:
                current, improved, progress = better, True, True
        if not progress:
            break
    return current if improved else None


__all__ = [
    "MAX_GROUP",
    "NODES",
    "SATURATED",
    "Reoptimise",
    "neighbourhoods",
    "resource_use",
    "search",
    "slack",
]
