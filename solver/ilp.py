"""`ilp`: the exact placement model, a mixed-integer program solved by SCIP through OR-Tools.

Why a MIP and not CP-SAT: every coefficient of this model (joules, seconds, megabytes,
grams) is a real number, and the contract asks the objective to match the evaluator to
1e-6 relative. CP-SAT needs integer coefficients, so every constraint row would have to be
scaled and rounded, and rounding a capacity row can turn a plan that sits on a limit from
feasible to infeasible or back. SCIP works on the real coefficients with a tight
feasibility tolerance, proves optimality with its LP bound, and its LP relaxation of the
flow formulation below is nearly integral, so branching stays small.

Formulation (per app and per model it may run):
- `x[i, d]` (binary): block i runs on device d. `sum_d x[0, d] = u` where `u` selects the
  model (1 for a single model; `sum_m u_m = 1` over accuracy-feasible variants).
- `t[i, d, e]` (continuous in [0, 1]): block i on d and block i+1 on e. Flow conservation
  (`sum_e t[i, d, e] = x[i, d]`, `sum_d t[i, d, e] = x[i+1, e]`) makes t the product of
  two one-hot rows, so it needs no integrality.
- Every cost of the contract is a unary term of some `x` (compute, memory, input and result
  transfers) or of some `t` (an activation moving between segments), taken from
  `solver.costs`, the same functions the evaluator adds up.
- Segments: `sum_{i, d != e} t[i, d, e] <= (max_stages - 1) u`.
- Cascades: `y[k, d]` (binary), stage k on device d; every cost is unary.
Capacity rows (compute, bandwidth, memory, battery) are divided by their limit, so the
solver's feasibility tolerance is relative.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import replace
from typing import Any

from ortools.linear_solver import pywraplp

from solver import lagrange
from solver.bounds import AppBounds
from solver.costs import Cost
from solver.document import Plan, build_plan, infeasible_plan
from solver.evaluate import app_cost
from solver.migration import app_migration
from solver.plan import Placement, Status
from solver.problem import Problem, SolveOptions
from solver.scenario import App

NAME = "ilp"
_FEASTOL = 1e-9


class _Model:
    """Variables, constraint families and objective of one MIP, built in that order."""

    def __init__(
        self, problem: Problem, options: SolveOptions, tighten: float, relax: frozenset[str]
    ) -> None:
        self.p = problem
        self.relax = relax
        self.cm = problem.cost
        self.opt = options
        self.tighten = tighten
        self.mip = pywraplp.Solver.CreateSolver("SCIP")
        if self.mip is None:  # pragma: no cover - SCIP ships in the ortools wheel
            raise RuntimeError("OR-Tools was built without SCIP")
        self.rows: dict[tuple[str, Any], dict[int, float]] = defaultdict(dict)
        self.objective: dict[int, float] = defaultdict(float)
        self.vars: list[Any] = []
        # app id -> decoding info
        self.part: dict[str, dict[str, tuple[Any, dict[tuple[int, str], int]]]] = {}
        self.casc: dict[str, dict[tuple[int, str], int]] = {}
        self.empty_apps: list[str] = []
        self.pruners: dict[str, AppBounds] = {}

    # -- variables -------------------------------------------------------------------------
    def _var(self, integer: bool, name: str) -> int:
        v = self.mip.IntVar(0, 1, name) if integer else self.mip.NumVar(0, 1, name)
        self.vars.append(v)
        return len(self.vars) - 1

    def _charge(self, app: App, v: int, c: Cost, migration_mb: float = 0.0) -> None:
        """Book one term's costs against variable v: objective and every shared row."""
        self.objective[v] += self.cm.weighted(app, c) + (
            self.p.scenario.objective.migration * migration_mb
        )
        rate = app.rate_rps
        for d, s in c.compute_s.items():
            self.rows[("cpu", d)][v] = self.rows[("cpu", d)].get(v, 0.0) + rate * s
        for d, mb in c.memory_mb.items():
            self.rows[("mem", d)][v] = self.rows[("mem", d)].get(v, 0.0) + mb
        for d, j in c.joules.items():
            if self.cm.battery_limit_w(d) is not None:
                self.rows[("bat", d)][v] = self.rows[("bat", d)].get(v, 0.0) + rate * j
        for k, mb in c.link_mb.items():
            u = rate * mb * 8.0 / self.p.scenario.links[k].mbps
            self.rows[("link", k)][v] = self.rows[("link", k)].get(v, 0.0) + u
        if app.slo_ms is not None and c.worst_ms:
            self.rows[("slo", app.id)][v] = self.rows[("slo", app.id)].get(v, 0.0) + c.worst_ms

    def add_partitioned(self, app: App) -> None:
        models = self.p.model_options(app)
        hosts = self.p.hosts(app)
        keep = self.pruners.get(app.id)
        choice: dict[str, tuple[Any, dict[tuple[int, str], int]]] = {}
        for m in models:
            shape = self.cm.shapes[m]
            n = shape.n
            u = self._var(True, f"u[{app.id},{m}]") if len(models) > 1 else None
            x: dict[tuple[int, str], int] = {}
            for i in range(n):
                for d in hosts:
                    if keep is not None and not keep.block(m, i, d):
                        continue
                    term = self.cm.block_term(app, m, i, d)
                    if not self._admits(term):
                        continue
                    v = self._var(True, f"x[{app.id},{m},{i},{d}]")
                    x[(i, d)] = v
                    self._charge(app, v, term, self.p.migration.block_mb(app.id, m, i, d))
            # flow through consecutive blocks
            outflow: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
            inflow: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
            changes: dict[int, float] = {}
            for i in range(n - 1):
                for d in hosts:
                    if (i, d) not in x:
                        continue
                    for e in hosts:
                        if (i + 1, e) not in x:
                            continue
                        if d == e:
                            if keep is not None and not keep.stay(m, i, d):
                                continue
                            v = self._var(False, f"t[{app.id},{m},{i},{d}]")
                        else:
                            if keep is not None and not keep.move(m, i, d, e):
                                continue
                            term = self.cm.transition_term(m, i, d, e)
                            if not self._admits(term):
                                continue
                            v = self._var(False, f"t[{app.id},{m},{i},{d},{e}]")
                            self._charge(app, v, term)
                            changes[v] = 1.0
                        outflow[(i, d)][v] = 1.0
                        inflow[(i + 1, e)][v] = 1.0
            first = {x[(0, d)]: 1.0 for d in hosts if (0, d) in x}
            self._equal(first, u, 1.0)
            for (i, d), v in x.items():
                if i < n - 1:
                    self._equal(outflow[(i, d)], v, 1.0)
                if i > 0:
                    self._equal(inflow[(i, d)], v, 1.0)
            if app.max_stages - 1 < n - 1 and changes:
                row = dict(changes)
                rhs = float(app.max_stages - 1)
                if u is not None:
                    row[u] = -rhs
                    rhs = 0.0
                ct = self.mip.Constraint(-math.inf, rhs)
                for v, coef in row.items():
                    ct.SetCoefficient(self.vars[v], coef)
            choice[m] = (u, x)
        if len(models) > 1:
            ct = self.mip.Constraint(1.0, 1.0)
            for _, (u, _) in choice.items():
                ct.SetCoefficient(self.vars[u], 1.0)
        if not models:
            self.empty_apps.append(app.id)
        self.part[app.id] = choice

    def _admits(self, term: Cost) -> bool:
        """Whether a term can be part of any plan on its own: every transfer routed, its
        weights within each device's memory, and nothing paid by a battery whose budget
        is nil (one that cannot last the horizon even idle), unless that row is relaxed."""
        if term.unroutable:
            return False
        devices = self.cm.devices
        if any(mb > devices[d].memory_mb for d, mb in term.memory_mb.items()):
            return False
        if "bat" not in self.relax:
            for d, j in term.joules.items():
                if j > 0 and self.cm.battery_limit_w(d) == 0.0:
                    return False
        return True

    def _equal(self, row: dict[int, float], rhs_var: int | None, rhs: float) -> None:
        """sum(row) == rhs_var (or == rhs when there is no variable)."""
        if rhs_var is None:
            ct = self.mip.Constraint(rhs, rhs)
        else:
            ct = self.mip.Constraint(0.0, 0.0)
            ct.SetCoefficient(self.vars[rhs_var], -1.0)
        for v, coef in row.items():
            ct.SetCoefficient(self.vars[v], coef)

    def add_cascade(self, app: App) -> None:
        assert app.cascade is not None
        hosts = self.p.hosts(app)
        keep = self.pruners.get(app.id)
        y: dict[tuple[int, str], int] = {}
        for k, stage in enumerate(app.cascade):
            row: dict[int, float] = {}
            for d in hosts:
                if keep is not None and not keep.stage(k, d):
                    continue
                term = self.cm.stage_term(app, k, d)
                if not self._admits(term):
                    continue
                v = self._var(True, f"y[{app.id},{k},{d}]")
                y[(k, d)] = v
                row[v] = 1.0
                self._charge(app, v, term, self.p.migration.stage_mb(app.id, stage.model, d))
            self._equal(row, None, 1.0)
        self.casc[app.id] = y

    # -- constraint families ---------------------------------------------------------------
    def constrain_capacity(self) -> None:
        """Compute, memory, battery and bandwidth, net of the apps held fixed."""
        scn = self.p.scenario
        used: dict[tuple[str, Any], float] = defaultdict(float)
        for app_id, placement in self.opt.fixed.items():
            app = self.cm.apps[app_id]
            c = app_cost(self.cm, app, placement)
            for d, s in c.compute_s.items():
                used[("cpu", d)] += app.rate_rps * s
            for d, mb in c.memory_mb.items():
                used[("mem", d)] += mb
            for d, j in c.joules.items():
                used[("bat", d)] += app.rate_rps * j
            for k, mb in c.link_mb.items():
                used[("link", k)] += app.rate_rps * mb * 8.0 / scn.links[k].mbps
        for key, row in self.rows.items():
            kind, ref = key
            if kind in self.relax:
                continue
            if kind == "cpu" or kind == "link":
                limit = scn.max_utilization
            elif kind == "mem":
                limit = self.cm.devices[ref].memory_mb
            elif kind == "bat":
                limit = max(self.cm.battery_limit_w(ref) or 0.0, 0.0)
            else:
                limit = self.cm.apps[ref].slo_ms or math.inf
            limit -= used.get(key, 0.0)
            # Tightened relative to a positive limit; a nil one stays exactly nil.
            rhs = 1.0 - self.tighten if limit > 0 else limit
            scale = limit if limit > 0 else 1.0
            ct = self.mip.Constraint(-math.inf, rhs)
            for v, coef in row.items():
                ct.SetCoefficient(self.vars[v], coef / scale)

    def set_objective(self) -> None:
        obj = self.mip.Objective()
        for v, coef in self.objective.items():
            obj.SetCoefficient(self.vars[v], coef)
        obj.SetMinimization()

    # -- solving ---------------------------------------------------------------------------
    def solve(self, time_limit_s: float, node_limit: int | None = None) -> int:
        self.mip.SetTimeLimit(max(1, int(time_limit_s * 1000)))
        self.mip.SetNumThreads(max(1, self.opt.threads))
        params = [
            f"numerics/feastol = {_FEASTOL}",
            "limits/gap = 0",
            "limits/absgap = 1e-12",
            f"randomization/randomseedshift = {self.opt.seed % 2**31}",
        ]
        if node_limit is not None:
            params.append(f"limits/nodes = {node_limit}")
        self.mip.SetSolverSpecificParametersAsString("\n".join(params) + "\n")
        return int(self.mip.Solve())

    def placements(self) -> dict[str, Placement]:
        out: dict[str, Placement] = {}
        for app_id, choice in self.part.items():
            for m, (u, x) in choice.items():
                if u is not None and self.vars[u].solution_value() < 0.5:
                    continue
                n = self.cm.shapes[m].n
                blocks = [""] * n
                for (i, d), v in x.items():
                    if self.vars[v].solution_value() > 0.5:
                        blocks[i] = d
                out[app_id] = Placement(app=app_id, model=m, blocks=tuple(blocks))
        for app_id, y in self.casc.items():
            app = self.cm.apps[app_id]
            assert app.cascade is not None
            stages = [""] * len(app.cascade)
            for (k, d), v in y.items():
                if self.vars[v].solution_value() > 0.5:
                    stages[k] = d
            out[app_id] = Placement(app=app_id, stages=tuple(stages))
        return out


def _build(
    problem: Problem,
    options: SolveOptions,
    tighten: float,
    only: set[str] | None = None,
    relax: frozenset[str] = frozenset(),
    upper: float | None = None,
    deadline: Deadline | None = None,
) -> _Model:
    model = _Model(problem, options, tighten, relax)
    if upper is not None and deadline is not None and not relax and only is None:
        model.pruners = _pruners(problem, options, upper, deadline)
    for app in problem.scenario.apps:
        if app.id in options.fixed or (only is not None and app.id not in only):
            continue
        if app.cascade is not None:
            model.add_cascade(app)
        else:
            model.add_partitioned(app)
        if deadline is not None and deadline.left() <= 0:
            # A model of 20-block chains on dozens of hosts can take longer to write down
            # than the whole time limit: stop, rather than overrun it by seconds.
            raise _OutOfTime
    model.constrain_capacity()
    model.set_objective()
    return model


class _OutOfTime(Exception):
    """The time limit ran out while the model was being built."""


def _out_of_time(options: SolveOptions) -> str:
    return (
        f"no feasible plan found within the time limit of {options.time_limit_s:g} s "
        "(not proven infeasible: allow more time)"
    )


class Deadline:
    """The time limit: the only reason a solver reads the clock."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def _pruners(
    problem: Problem, options: SolveOptions, upper: float, deadline: Deadline
) -> dict[str, AppBounds]:
    """Per-app variable fixing from a feasible plan's objective (see solver.lagrange)."""
    budget = min(5.0, 0.2 * deadline.left())
    return lagrange.bounds(problem, options, upper, _fixed_objective(problem, options), budget)


def _incumbent(problem: Problem, options: SolveOptions) -> Plan | None:
    """The fast heuristic's plan, when it finds a feasible one."""
    from solver import heuristic

    plan = heuristic.solve_greedy(problem, options)
    if plan.status == Status.INFEASIBLE or plan.doc.objective is None:
        return None
    return plan


def solve(problem: Problem, options: SolveOptions) -> Plan:
    """Place every app not in `options.fixed` optimally, or say why nothing fits."""
    from solver.diagnose import explain_infeasible

    deadline = Deadline(options.time_limit_s)
    incumbent = _incumbent(
        problem, replace(options, time_limit_s=max(0.5, 0.3 * options.time_limit_s))
    )
    upper = incumbent.doc.objective if incumbent is not None else None
    tighten = 0.0
    for _ in range(3):
        try:
            model = _build(problem, options, tighten, upper=upper, deadline=deadline)
        except _OutOfTime:
            if incumbent is not None:
                incumbent.doc.solver = NAME
                return incumbent
            return infeasible_plan(problem.cost, NAME, _out_of_time(options))
        if model.empty_apps:
            app = model.empty_apps[0]
            return infeasible_plan(problem.cost, NAME, f"app {app}: no variant meets min_accuracy")
        status = model.solve(deadline.left())
        if status in (pywraplp.Solver.INFEASIBLE,):
            reason = explain_infeasible(problem, options, deadline)
            return infeasible_plan(problem.cost, NAME, reason)
        if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            # Time ran out before the model found a plan: the heuristic's, if it had one.
            if incumbent is not None:
                incumbent.doc.solver = NAME
                return incumbent
            return infeasible_plan(problem.cost, NAME, _out_of_time(options))
        placements = {**options.fixed, **model.placements()}
        bound = model.mip.Objective().BestBound() + _fixed_objective(problem, options)
        optimal = status == pywraplp.Solver.OPTIMAL
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


def _fixed_objective(problem: Problem, options: SolveOptions) -> float:
    cm = problem.cost
    total = 0.0
    for app_id, p in options.fixed.items():
        app = cm.apps[app_id]
        total += cm.weighted(app, app_cost(cm, app, p))
        total += problem.scenario.objective.migration * app_migration(problem.migration, app, p)
    return total


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
        model = _build(problem, options, 1e-7, upper=upper, deadline=deadline)
    except _OutOfTime:
        return None
    if model.empty_apps or deadline.left() <= 0:
        return None
    status = model.solve(deadline.left(), node_limit=nodes)
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
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
            model = _build(problem, held, 1e-7, upper=current.doc.objective, deadline=deadline)
        except _OutOfTime:
            break
        if model.empty_apps or deadline.left() <= 0:
            continue
        status = model.solve(deadline.left(), node_limit=200)
        if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            continue
        plan = build_plan(problem.cost, {**others, **model.placements()}, Status.FEASIBLE, NAME)
        objective = plan.doc.objective
        better = objective is not None and objective < current.doc.objective * (1 - 1e-12)
        if plan.status != Status.INFEASIBLE and better:
            current, improved = plan, True
    return current if improved else None


def feasible(
    problem: Problem,
    options: SolveOptions,
    only: set[str],
    time_limit_s: float,
    relax: frozenset[str] = frozenset(),
) -> bool | None:
    """Whether the apps in `only` fit together (with `options.fixed`), some rows relaxed;
    None when the time limit came first."""
    model = _build(problem, options, 0.0, only=only, relax=relax)
    if model.empty_apps:
        return False
    if time_limit_s <= 0:
        return None
    status = model.solve(time_limit_s)
    if status in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return True
    return False if status == pywraplp.Solver.INFEASIBLE else None


__all__ = ["NAME", "feasible", "polish", "polish_apps", "solve"]
