"""The apps a solve holds fixed: their use of every shared resource, and their objective.

An incremental re-solve holds thousands of apps where they run and places a few: their
use is booked from what the evaluator already knows (its cached per-app costs, and the
totals of the last evaluation on this fleet, less the apps that are not fixed), in the
resource numbering of `solver.fastcost`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from solver.costs import Cost
from solver.evaluate import (
    Evaluation,
    app_violations,
    battery_within,
    cached,
    cached_cost,
    changes_from,
    structure_errors,
)
from solver.fastcost import Fleet, Scorer
from solver.migration import app_migration
from solver.plan import Placement
from solver.problem import Problem
from solver.scenario import App

# app id -> (app, placement, its cost, whether the app's own checks fail there): kept for
# every problem whose devices differ only in their batteries (`breaks_own_limits`).
JUDGED = "judged"
# Per problem: the evaluation `judged` builds on (`_base_of`), each pack's limit.
_BASE_OF, _LIMITS = "judged_base", "battery_limits"


def base_evaluation(problem: Problem) -> Evaluation | None:
    """The last evaluation on this problem or, after `apply_change`, on the one it came
    from, when it can be built upon (`solver.evaluate.evaluate`, `base`)."""
    for name in ("evaluation", "base_evaluation"):
        ev = problem.derived.get(name)
        if isinstance(ev, Evaluation) and changes_from(ev, problem.scenario) is not None:
            return ev
    return None


def book_fixed(
    problem: Problem, fixed: Mapping[str, Placement], f: Fleet, scorer: Scorer, load: np.ndarray
) -> float:
    """Book the use of the `fixed` apps into `load` and return their objective. From the
    evaluator's cached costs where it has them (incremental re-solves hold thousands of
    apps fixed), and from the totals of the last evaluation on this fleet, less the apps
    that are not fixed, where it has one."""
    cm = problem.cost
    links = problem.scenario.links
    booked, objective = _book_from_base(problem, fixed, f, load)
    for app_id, p in fixed.items():
        if app_id in booked:
            continue
        app = cm.apps[app_id]
        c = cached(problem.app_costs, app_id, p)
        if c is None:
            sc = scorer.score(app, p)
            np.add.at(load, sc.resources, sc.amounts)
            objective += sc.objective
            continue
        rate, index = app.rate_rps, f.index
        for d, sec in c.compute_s.items():
            load[index[d]] += rate * sec
        for d, mb in c.memory_mb.items():
            load[f.n + index[d]] += mb
        for d, j in c.joules.items():
            if f.has_battery[index[d]]:
                load[2 * f.n + index[d]] += rate * j
        for k, mb in c.link_mb.items():
            load[3 * f.n + k] += rate * mb * 8.0 / links[k].mbps
        objective += cm.weighted(app, c) + problem.scenario.objective.migration * (
            app_migration(problem.migration, app, p)
        )
    return objective


def _book_from_base(
    problem: Problem, fixed: Mapping[str, Placement], f: Fleet, load: np.ndarray
) -> tuple[set[str], float]:
    base = base_evaluation(problem)
    if base is None or not fixed:
        return set(), 0.0
    index = f.index
    objective = 0.0
    scn = problem.scenario
    n = f.n
    load[:n] = np.fromiter(base.utilization.values(), float, n)
    load[n : 2 * n] = np.fromiter(base.memory_mb.values(), float, n)
    load[2 * n : 3 * n] = np.fromiter(base.power_w.values(), float, n) * f.has_battery
    mbps = np.fromiter((lk.mbps for lk in scn.links), float, len(scn.links))
    load[3 * n :] = np.asarray(base.link_mbit) / mbps
    booked: set[str] = set()
    w_mig = scn.objective.migration
    costs, apps, mig = problem.app_costs, problem.cost.apps, problem.migration
    placed = mig.placed
    for app_id, rec in base.records.items():
        p = fixed.get(app_id)
        hit = costs.get(app_id)
        same = hit is not None and hit[1] is rec.cost and rec.app is apps.get(app_id)
        if p is not None and same and _same(rec.placement, p):
            booked.add(app_id)
            # The plan in force's own placement moves nothing.
            m = 0.0 if placed.get(app_id) is p else app_migration(mig, rec.app, p)
            objective += (
                rec.term
                if m == rec.migration_mb
                else problem.cost.weighted(rec.app, rec.cost) + w_mig * m
            )
            continue
        c, rate = rec.cost, rec.app.rate_rps
        for d, sec in c.compute_s.items():
            load[index[d]] -= rate * sec
        for d, mb in c.memory_mb.items():
            load[n + index[d]] -= mb
        for d, j in c.joules.items():
            if f.has_battery[index[d]]:
                load[2 * n + index[d]] -= rate * j
        for k, mb in c.link_mb.items():
            load[3 * n + k] -= rate * mb * 8.0 / mbps[k]
    return booked, objective


def held_broken(
    problem: Problem, previous: Mapping[str, Placement], apps: Collection[str]
) -> list[str]:
    """Of `apps`, in the scenario's order, those `previous` holds where they break a
    per-app constraint (as `solver.incremental.touched_apps` judges them)."""
    cm = problem.cost
    return [
        a.id for a in problem.scenario.apps
        if a.id in apps and a.id in previous
        and breaks_own_limits(problem, cm.apps[a.id], previous[a.id])
    ]  # fmt: skip


def breaks_own_limits(problem: Problem, app: App, p: Placement) -> bool:
    """Whether `app` held at `p` breaks a per-app constraint or does not fit its model's
    shape, once per problem (`touched_apps` and `held_broken` ask of the same apps)."""
    memo = problem.derived.setdefault("broken", {})
    if (hit := memo.get(app.id)) is None or not _same(hit[0], p):
        hit = memo[app.id] = (p, judged(problem, app, p))
    return bool(hit[1])


def judged(problem: Problem, app: App, p: Placement) -> bool:
    """`breaks_own_limits`, read from the plan in force's evaluation (`base_evaluation`) when its
    record is of this app at `p` with the very cost carried into `problem`: nothing the
    verdict reads changed, and a re-solve at 5,000 apps must not judge all again (45 ms).
    Else the app's own checks are read from `JUDGED` when it holds them for this app at
    `p` with the very cost `problem` has for it (every re-plan's problem is a new one, and
    judging again each held app whose figures moved since the plan in force was a quarter
    of a re-plan kept without a solve: bench/RESULTS.md); only its own pack's verdict,
    which reads the battery, is made again."""
    base = _base_of(problem)
    rec = base.records.get(app.id) if base is not None else None
    cost = cached(problem.app_costs, app.id, p)
    if rec is not None and rec.app is app and cost is rec.cost and _same(rec.placement, p):
        return bool(rec.violations) or over_own_pack(problem, app, rec.cost)
    own = problem.derived.setdefault(JUDGED, {})
    if cost is not None and _kept_for(own.get(app.id), app, p, cost):
        return bool(own[app.id][3]) or over_own_pack(problem, app, cost)
    cm = problem.cost
    if structure_errors(cm, app, p):
        return True
    cost = cached_cost(cm, app, p, problem.app_costs)
    fails = bool(app_violations(cm, app, p, cost))
    own[app.id] = (app, p, cost, fails)
    return fails or over_own_pack(problem, app, cost)


def _base_of(problem: Problem) -> Evaluation | None:
    """`base_evaluation(problem)`, kept on the problem while the evaluations it reads are
    the same objects: `judged` asks for it for every held app, at every re-plan (2.9
    million times over a day of the 200-device fleet)."""
    d = problem.derived
    ev, before = d.get("evaluation"), d.get("base_evaluation")
    hit = d.get(_BASE_OF)
    if hit is None or hit[0] is not ev or hit[1] is not before:
        hit = d[_BASE_OF] = (ev, before, base_evaluation(problem))
    return hit[2]


def _same(a: Placement, b: Placement) -> bool:
    return a is b or a == b


def _kept_for(
    hit: tuple[App, Placement, Cost, bool] | None, app: App, p: Placement, cost: Cost
) -> bool:
    """Whether a `JUDGED` entry holds the checks of `app` at `p` with the very `cost`."""
    return hit is not None and hit[0] is app and hit[2] is cost and _same(hit[1], p)


def over_own_pack(problem: Problem, app: App, cost: Cost) -> bool:
    """Whether `app` alone draws more from its source's battery than the pack pays: like
    a per-app constraint, it breaks every plan that holds it, whatever the others draw."""
    # Each pack's limit once per problem (which has its own levels): asked of every held
    # app at every re-plan.
    limits = problem.derived.get(_LIMITS)
    if limits is None:
        limits = problem.derived[_LIMITS] = {}
    source = app.source
    if source in limits:
        limit = limits[source]
    else:
        limit = limits[source] = problem.cost.battery_limit_w(source)
    return not battery_within(app.rate_rps * cost.joules.get(source, 0.0), limit)


__all__ = [
    "JUDGED",
    "base_evaluation",
    "book_fixed",
    "breaks_own_limits",
    "held_broken",
    "judged",
    "over_own_pack",
]
