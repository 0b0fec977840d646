"""The apps a solve holds fixed: their use of every shared resource, and their objective.

An incremental re-solve holds thousands of apps where they run and places a few: their
use is booked from what the evaluator already knows (its cached per-app costs, and the
totals of the last evaluation on this fleet, less the apps that are not fixed), in the
resource numbering of `solver.fastcost`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from solver.evaluate import Evaluation, cached, changes_from
from solver.fastcost import Fleet, Scorer
from solver.migration import app_migration
from solver.plan import Placement
from solver.problem import Problem


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
        if p is not None and same and (rec.placement is p or rec.placement == p):
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


__all__ = ["base_evaluation", "book_fixed"]
