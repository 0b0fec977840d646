"""`ilp`: the exact solver. The model itself is `solver.ilp_model`; this is the solve.

1. The greedy steps of the heuristic (`solver.heuristic.greedy`) give an incumbent,
   whose objective lets the Lagrangian bounds fix away choices that cannot beat it; or
   a proof that no plan exists (then only the diagnosis runs).
2. The exact model is built and solved within the time limit. A plan that SCIP's
   tolerance let through but the evaluator refuses makes the rows tighter, and the model
   is solved again.
3. Infeasible: `solver.diagnose` names the app and the constraint family, with its code.
   Out of time before any plan: the incumbent if there is one, else a `time_limit`
   reason (not proven infeasible).
"""

from __future__ import annotations

import math
from dataclasses import replace

from solver.diagnose import UNDECIDED, explain_infeasible
from solver.document import Plan, build_plan, infeasible_plan
from solver.heuristic import greedy
from solver.ilp_model import (
    INFEASIBLE,
    OPTIMAL,
    Deadline,
    OutOfTime,
    build,
    fixed_objective,
    solved,
)
from solver.plan import Status
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.verdict import prove_infeasible

NAME = "ilp"


def _out_of_time(options: SolveOptions) -> Reason:
    return Reason(
        Code.TIME_LIMIT,
        f"no feasible plan found within the time limit of {options.time_limit_s:g} s "
        "(not proven infeasible: allow more time)",
    )


def _incumbent(problem: Problem, options: SolveOptions) -> tuple[Plan | None, Reason | None]:
    """The fast heuristic's plan, when it finds a feasible one; else a proof that none
    exists, when one is quick (`solver.verdict`: an app with no placement over every
    host, a bound on the least use a camera's apps make of its battery and links, or the
    stuck app's small group in the exact model)."""
    plan, stuck, _ = greedy(problem, options)
    if plan.status == Status.INFEASIBLE or plan.doc.objective is None:
        if stuck is None:
            return None, None
        # Where the greedy got stuck, the stuck app alone or with the few beside it is a
        # small exact model: a proof in a fraction of a second when it does not fit.
        return None, prove_infeasible(problem, options, stuck, min(2.0, options.time_limit_s))
    return plan, None


def _renamed(plan: Plan) -> Plan:
    plan.doc.solver = NAME
    return plan


def solve(problem: Problem, options: SolveOptions) -> Plan:
    """Place every app not in `options.fixed` optimally, or say why nothing fits."""
    deadline = Deadline(options.time_limit_s)
    incumbent, proof = _incumbent(
        problem, replace(options, time_limit_s=max(0.5, 0.3 * options.time_limit_s))
    )
    if proof is not None:
        # No plan exists: the diagnosis's small models name why, without building the
        # whole model (which can take longer than the limit); if time stops them first,
        # the proof's own reason.
        reason = explain_infeasible(problem, options, deadline)
        return infeasible_plan(problem.cost, NAME, proof if reason is UNDECIDED else reason)
    upper = incumbent.doc.objective if incumbent is not None else None
    tighten = 0.0
    for _ in range(3):
        try:
            model = build(problem, options, tighten, upper=upper, deadline=deadline)
            if deadline.left() <= 0:
                raise OutOfTime  # SCIP spends seconds setting up a large model even then
        except OutOfTime:
            if incumbent is not None:
                return _renamed(incumbent)
            return infeasible_plan(problem.cost, NAME, _out_of_time(options))
        if model.empty_apps:
            app = model.empty_apps[0]
            reason = Reason(Code.ACCURACY, f"app {app}: no variant meets min_accuracy", app)
            return infeasible_plan(problem.cost, NAME, reason)
        status = model.solve(deadline.left())
        if status == INFEASIBLE:
            reason = explain_infeasible(problem, options, deadline)
            return infeasible_plan(problem.cost, NAME, reason)
        if not solved(status):
            # Time ran out before the model found a plan: the heuristic's, if it had one.
            if incumbent is not None:
                return _renamed(incumbent)
            return infeasible_plan(problem.cost, NAME, _out_of_time(options))
        placements = {**options.fixed, **model.placements()}
        bound = model.mip.Objective().BestBound() + fixed_objective(problem, options)
        optimal = status == OPTIMAL
        plan = build_plan(
            problem.cost,
            placements,
            Status.OPTIMAL if optimal else Status.FEASIBLE,
            NAME,
            bound=bound if math.isfinite(bound) else None,
            stats={"variables": len(model.vars), "constraints": model.mip.NumConstraints()},
        )
        if plan.status != Status.INFEASIBLE:
            objective = plan.doc.objective
            if objective is not None and plan.doc.bound is not None:
                # The bound is proven on the solver's arithmetic; never report it above
                # the evaluator's objective of the same plan.
                plan.doc.bound = objective if optimal else min(plan.doc.bound, objective)
            return plan
        # The solver's tolerance let a row pass that the evaluator refuses: tighten, retry.
        tighten = 1e-7 if tighten == 0.0 else tighten * 100
    return plan


__all__ = ["NAME", "solve"]
