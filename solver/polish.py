"""The `heuristic` solver: the greedy steps of `solver.heuristic`, then, on fleets small
enough, the exact model in small doses.

Greedy assignment under contention, and the Lagrangian SLO search, can leave a few
percent on the table where a battery, an uplink or an SLO binds. Three exact steps close
that gap, each on a small model and each kept only when the evaluator's objective drops:
1. an exact best response (`polish_apps`) for the apps furthest above their own bound
   (an app at its bound cannot gain alone; a plan whose apps all are is optimal, and
   the exact steps are skipped);
2. large-neighbourhood search: the apps that share a saturated resource re-placed
   together (`solver.neighbourhood`), which finds the swaps no one-app move can;
3. the whole exact model fixed around the plan (`polish`).
Node limits and counts, not the clock, bound each step, so the same input gives the same
plan; the clock is a safety net, and it is this process's CPU time (`time.process_time`,
SCIP's CPU clock), so that a machine loaded by other work takes longer over the same
steps rather than cutting them short with a different plan.

When the greedy steps find no plan, a proof from the stuck app's small group
(`solver.verdict`) takes a fraction of a second; only when it proves nothing does the
whole exact model settle it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from solver import ilp, neighbourhood
from solver.candidates import fleet_of
from solver.document import Plan, build_plan, infeasible_plan
from solver.heuristic import NAME, greedy
from solver.ilp_model import Deadline, OutOfTime, build, solved
from solver.plan import Status
from solver.problem import Problem, SolveOptions
from solver.verdict import Stuck, prove_infeasible

TOTAL_S = 2.5  # the whole heuristic, greedy steps included, aims to end within this
MAX_APPS = 60
MAX_DEVICES = 80
BUDGET_S = 2.0  # most of the time limit the exact steps may take (a safety net: the
# steps below are bounded by counts and node limits, so that the same input gives the
# same plan)
RESPONSES = 8  # apps given an exact best response, those furthest above their own bound
NODES = 400  # branch-and-bound nodes of the whole model
VERDICT_S = 0.6  # most time the small-group proof of infeasibility may take
# Kept for callers of the earlier names.
POLISH_MAX_APPS = MAX_APPS
POLISH_MAX_DEVICES = MAX_DEVICES


def solve(problem: Problem, options: SolveOptions) -> Plan:
    """Place every app not in `options.fixed`; feasible or infeasible with a reason."""
    start = time.process_time()
    plan, stuck, lower = greedy(problem, options)
    left = min(options.time_limit_s, TOTAL_S) - (time.process_time() - start)
    return improve(problem, options, Greedy(plan, stuck, lower), left)


@dataclass(slots=True)
class Greedy:
    """What the greedy steps hand over: their plan, where they got stuck when they found
    none, and each free app's lower bound over every host (empty when not known)."""

    plan: Plan
    stuck: Stuck | None
    lower: dict[str, float]


def small_fleet(problem: Problem) -> bool:
    """A fleet few enough devices for exact steps (the apps to place aside)."""
    return len(problem.scenario.devices) <= MAX_DEVICES


def small(problem: Problem, options: SolveOptions) -> bool:
    """Whether the fleet is small enough for exact steps within the budget."""
    free = [a for a in problem.scenario.apps if a.id not in options.fixed]
    return len(free) <= MAX_APPS and small_fleet(problem)


def improve(problem: Problem, options: SolveOptions, found: Greedy, left_s: float) -> Plan:
    """The greedy plan improved (or an infeasible verdict settled) within `left_s`."""
    plan = found.plan
    if not small(problem, options) or left_s <= 0.2:
        return plan
    if plan.status == Status.INFEASIBLE:
        return _settle(problem, options, plan, found.stuck, left_s)
    fleet = fleet_of(problem)
    loose = neighbourhood.slack(problem, options, fleet, plan, found.lower)
    if not loose:
        return plan  # every app at its own optimum: the plan is optimal
    start = time.process_time()
    budget = min(BUDGET_S, left_s)
    current = plan
    # Best responses for the apps furthest above their own optimum; the others held.
    respond = sorted(loose, key=lambda a: (-loose[a], a))[:RESPONSES]
    held = {a: p for a, p in plan.placements.items() if a not in respond}
    better = polish_apps(problem, replace(options, fixed=held), current, 0.4 * budget)
    if better is not None:
        current = better
    spent = time.process_time() - start

    def reoptimise(group: SolveOptions, incumbent: Plan, seconds: float, nodes: int) -> Plan | None:
        return polish(problem, group, incumbent, seconds, nodes)

    better = neighbourhood.search(
        problem, options, fleet, current, found.lower, 0.75 * budget - spent, reoptimise
    )
    if better is not None:
        current = better
    left = budget - (time.process_time() - start)
    whole = polish(problem, options, current, left, NODES) if left > 0.2 else None
    if whole is not None:
        current = whole
    if current is plan:
        return plan
    current.doc.solver = NAME
    current.doc.bound = plan.doc.bound
    if current.doc.bound is not None and current.doc.objective is not None:
        current.doc.bound = min(current.doc.bound, current.doc.objective)
    return current


def _settle(
    problem: Problem, options: SolveOptions, plan: Plan, stuck: Stuck | None, left_s: float
) -> Plan:
    """Whether a plan exists after all, when the greedy steps found none: first a proof
    from the stuck app's small group (`solver.verdict`), else the whole exact model."""
    start = time.process_time()
    if stuck is not None:
        reason = prove_infeasible(problem, options, stuck, min(VERDICT_S, left_s))
        if reason is not None:
            return infeasible_plan(problem.cost, NAME, reason)
    left = min(BUDGET_S, left_s - (time.process_time() - start))
    if left <= 0.2:
        return plan
    # On a fleet this small the exact model settles whether a plan exists (and says why
    # not) within the same budget.
    exact = ilp.solve(problem, replace(options, time_limit_s=left))
    exact.doc.solver = NAME
    if exact.status == Status.OPTIMAL:
        exact.status = exact.doc.status = Status.FEASIBLE
    # Out of time without naming an app: the greedy steps' reason names one to act on.
    named = exact.reason is not None and exact.reason.app is not None
    return plan if exact.status == Status.INFEASIBLE and not named else exact


def polish(
    problem: Problem, options: SolveOptions, incumbent: Plan, time_limit_s: float, nodes: int
) -> Plan | None:
    """A better plan than `incumbent` from the exact model, fixed around it and stopped
    after `nodes` branch-and-bound nodes (a node limit, not only the clock, so that the
    same input gives the same plan); None when it finds nothing better."""
    upper = incumbent.doc.objective
    if upper is None:
        return None
    deadline = Deadline(time_limit_s, cpu=True)
    try:
        model = build(problem, options, 1e-7, upper=upper, deadline=deadline)
    except OutOfTime:
        return None
    if model.empty_apps or deadline.left() <= 0:
        return None
    if not solved(model.solve(deadline.left(), node_limit=nodes, cpu=True)):
        return None
    placements = {**options.fixed, **model.placements()}
    plan = build_plan(problem.cost, placements, Status.FEASIBLE, NAME)
    objective = plan.doc.objective
    if plan.status == Status.INFEASIBLE or objective is None or objective >= upper:
        return None
    return plan


def polish_apps(
    problem: Problem, options: SolveOptions, incumbent: Plan, time_limit_s: float
) -> Plan | None:
    """Best response, one app at a time: each app's exact best placement with every
    other app held where it is (SLO and capacities exact), kept when it lowers the
    objective. Each model is one app's, fixed around the incumbent, so each is small."""
    deadline = Deadline(time_limit_s, cpu=True)
    current = incumbent
    improved = False
    free = [a.id for a in problem.scenario.apps if a.id not in options.fixed]
    for app_id in free:
        if deadline.left() <= 0 or current.doc.objective is None:
            break
        others = {k: v for k, v in current.placements.items() if k != app_id}
        held = replace(options, fixed=others)
        try:
            model = build(problem, held, 1e-7, upper=current.doc.objective, deadline=deadline)
        except OutOfTime:
            break
        if model.empty_apps or deadline.left() <= 0:
            continue
        if not solved(model.solve(deadline.left(), node_limit=200, cpu=True)):
            continue
        plan = build_plan(problem.cost, {**others, **model.placements()}, Status.FEASIBLE, NAME)
        objective = plan.doc.objective
        better = objective is not None and objective < current.doc.objective * (1 - 1e-12)
        if plan.status != Status.INFEASIBLE and better:
            current, improved = plan, True
    return current if improved else None


__all__ = [
    "BUDGET_S",
    "MAX_APPS",
    "MAX_DEVICES",
    "NAME",
    "POLISH_MAX_APPS",
    "POLISH_MAX_DEVICES",
    "TOTAL_S",
    "Greedy",
    "improve",
    "small",
    "small_fleet",
    "solve",
]
