"""The `heuristic` solver: the greedy steps of `solver.heuristic`, then, on fleets small
enough, the exact model's polish: each app's exact best response to the others
(`polish_apps`), then the whole model fixed around the plan (`polish`)."""

from __future__ import annotations

import time
from dataclasses import replace

from solver import ilp
from solver.document import Plan, build_plan
from solver.heuristic import NAME, solve_greedy
from solver.ilp_model import Deadline, OutOfTime, build, solved
from solver.plan import Status
from solver.problem import Problem, SolveOptions

# Polishing with the exact model (see _polish): where, how long, how far.
POLISH_MAX_APPS = 60
POLISH_MAX_DEVICES = 80
POLISH_S = 2.0
POLISH_NODES = 400


def solve(problem: Problem, options: SolveOptions) -> Plan:
    """Place every app not in `options.fixed`; feasible or infeasible with a reason."""
    start = time.perf_counter()
    plan = solve_greedy(problem, options)
    return _polish(problem, options, plan, options.time_limit_s - (time.perf_counter() - start))


def _polish(problem: Problem, options: SolveOptions, plan: Plan, left_s: float) -> Plan:
    """On fleets small enough, let the exact model improve the plan within a small budget.

    Greedy assignment under contention, and the Lagrangian SLO search, can leave a few
    percent on the table. First each app's exact best response to the others, then the
    whole exact model, both with every choice that cannot beat this plan fixed away
    (`solver.bounds`), close that gap on medium fleets within a second or two; node
    limits keep the result deterministic.
    """
    free = [a for a in problem.scenario.apps if a.id not in options.fixed]
    small = len(free) <= POLISH_MAX_APPS and len(problem.scenario.devices) <= POLISH_MAX_DEVICES
    if not small or left_s <= 0.2:
        return plan
    if plan.status == Status.INFEASIBLE:
        # The greedy steps found nothing; on a fleet this small the exact model settles
        # whether a plan exists (and says why not) within the same budget.
        exact = ilp.solve(problem, replace(options, time_limit_s=min(POLISH_S, left_s)))
        exact.doc.solver = NAME
        if exact.status == Status.OPTIMAL:
            exact.status = exact.doc.status = Status.FEASIBLE
        # Out of time without naming an app: the greedy steps' reason names one to act on.
        named = exact.reason is not None and exact.reason.app is not None
        return plan if exact.status == Status.INFEASIBLE and not named else exact

    start = time.perf_counter()
    budget = min(POLISH_S, left_s)
    better = polish_apps(problem, options, plan, 0.75 * budget)
    if better is not None:
        plan = better
    budget -= time.perf_counter() - start
    whole = polish(problem, options, plan, budget, POLISH_NODES) if budget > 0.2 else None
    better = whole if whole is not None else better
    if better is None:
        return plan
    better.doc.solver = NAME
    better.doc.bound = plan.doc.bound
    if better.doc.bound is not None and better.doc.objective is not None:
        better.doc.bound = min(better.doc.bound, better.doc.objective)
    return better


def polish(
    problem: Problem, options: SolveOptions, incumbent: Plan, time_limit_s: float, nodes: int
) -> Plan | None:
    """A better plan than `incumbent` from the exact model, fixed around it and stopped
    after `nodes` branch-and-bound nodes (a node limit, not only the clock, so that the
    same input gives the same plan); None when it finds nothing better."""
    upper = incumbent.doc.objective
    if upper is None:
        return None
    deadline = Deadline(time_limit_s)
    try:
        model = build(problem, options, 1e-7, upper=upper, deadline=deadline)
    except OutOfTime:
        return None
    if model.empty_apps or deadline.left() <= 0:
        return None
    if not solved(model.solve(deadline.left(), node_limit=nodes)):
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
    deadline = Deadline(time_limit_s)
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
        if not solved(model.solve(deadline.left(), node_limit=200)):
            continue
        plan = build_plan(problem.cost, {**others, **model.placements()}, Status.FEASIBLE, NAME)
        objective = plan.doc.objective
        better = objective is not None and objective < current.doc.objective * (1 - 1e-12)
        if plan.status != Status.INFEASIBLE and better:
            current, improved = plan, True
    return current if improved else None


__all__ = ["NAME", "POLISH_MAX_APPS", "POLISH_MAX_DEVICES", "solve"]
