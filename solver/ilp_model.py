"""The exact placement model: a mixed-integer program solved by SCIP through OR-Tools.

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
  transfers, the first segment's overhead) or of some `t` (an activation moving between
  segments, and the next segment's overhead), taken from `solver.costs`, the same
  functions the evaluator adds up.
- Cascades: `y[k, d]` (binary), stage k on device d; every cost is unary.
Variables are built first (`add_partitioned`, `add_cascade`), then one method per
constraint family of the contract (`constrain_*`), then the objective, as PyJobShop's
builders have it. Capacity rows are divided by their limit, so the solver's feasibility
tolerance is relative.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from solver import lagrange
from solver.bounds import AppBounds
from solver.costs import Cost
from solver.evaluate import app_cost, within
from solver.migration import app_migration
from solver.plan import Placement
from solver.problem import Problem, SolveOptions
from solver.reasons import Code
from solver.scenario import App

_FEASTOL = 1e-9
# The shared rows, by the code of the family they belong to (`relax` names codes).
_CAPACITY = (Code.COMPUTE, Code.BANDWIDTH, Code.MEMORY, Code.BATTERY)


class Deadline:
    """The time limit: the only reason a solver reads the clock. Wall time by default (a
    user's time limit); with `cpu`, this process's CPU time (the heuristic's polish
    budget, so that a loaded machine slows it down but does not change its plan)."""

    def __init__(self, seconds: float, cpu: bool = False) -> None:
        self.seconds = seconds
        self.cpu = cpu
        self._clock = time.process_time if cpu else time.monotonic
        self.end = self._clock() + seconds

    def left(self) -> float:
        return max(0.0, self.end - self._clock())


class OutOfTime(Exception):
    """The time limit ran out while the model was being built."""


@dataclass(slots=True)
class _Chain:
    """The variables of one app running one partitioned model."""

    app: App
    model: str
    u: int | None  # the model's choice variable (variants), None for a single model
    x: dict[tuple[int, str], int] = field(default_factory=dict)
    outflow: dict[tuple[int, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    inflow: dict[tuple[int, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    moves: list[int] = field(default_factory=list)  # t[i, d, e] with d != e


class ExactModel:
    """Variables, constraint families and objective of one MIP, built in that order."""

    def __init__(
        self, problem: Problem, options: SolveOptions, tighten: float, relax: frozenset[Code]
    ) -> None:
        self.p = problem
        self.relax = relax
        self.cm = problem.cost
        self.opt = options
        self.tighten = tighten
        # OR-Tools is imported here, not with the module: the heuristic's command path
        # never builds a model and its import costs about 0.17 s of CPU.
        from ortools.linear_solver import pywraplp

        self.mip = pywraplp.Solver.CreateSolver("SCIP")
        if self.mip is None:  # pragma: no cover - SCIP ships in the ortools wheel
            raise RuntimeError("OR-Tools was built without SCIP")
        # Each term's use of a shared row, by (family, device id / link index / app id).
        self.rows: dict[tuple[Code, Any], dict[int, float]] = defaultdict(dict)
        self.objective: dict[int, float] = defaultdict(float)
        self.vars: list[Any] = []
        self.chains: dict[str, list[_Chain]] = {}
        self.casc: dict[str, dict[tuple[int, str], int]] = {}
        self.empty_apps: list[str] = []
        self.pruners: dict[str, AppBounds] = {}
        self._used: dict[tuple[Code, Any], float] | None = None
        self.deadline: Deadline | None = None

    def _in_time(self) -> None:
        """Stop writing the model once the time limit has passed: one app's chains on
        80 hosts are hundreds of thousands of terms, seconds of Python under load."""
        if self.deadline is not None and self.deadline.left() <= 0:
            raise OutOfTime

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
        rows = self.rows
        for d, s in c.compute_s.items():
            rows[(Code.COMPUTE, d)][v] = rows[(Code.COMPUTE, d)].get(v, 0.0) + rate * s
        for d, mb in c.memory_mb.items():
            rows[(Code.MEMORY, d)][v] = rows[(Code.MEMORY, d)].get(v, 0.0) + mb
        for d, j in c.joules.items():
            if self.cm.battery_limit_w(d) is not None:
                rows[(Code.BATTERY, d)][v] = rows[(Code.BATTERY, d)].get(v, 0.0) + rate * j
        for k, mb in c.link_mb.items():
            u = rate * mb * 8.0 / self.p.scenario.links[k].mbps
            rows[(Code.BANDWIDTH, k)][v] = rows[(Code.BANDWIDTH, k)].get(v, 0.0) + u
        if app.slo_ms is not None and c.worst_ms:
            rows[(Code.SLO, app.id)][v] = rows[(Code.SLO, app.id)].get(v, 0.0) + c.worst_ms

    def _admits(self, app: App, term: Cost) -> bool:
        """Whether a term can be part of any plan on its own: every transfer routed, its
        weights within each device's memory, and nothing paid by a battery whose budget
        is nil (one that cannot last the horizon even idle), unless that family is relaxed."""
        if term.unroutable:
            return False
        devices = self.cm.devices
        if Code.MEMORY not in self.relax and any(
            mb > devices[d].memory_mb for d, mb in term.memory_mb.items()
        ):
            return False
        if Code.BATTERY not in self.relax:
            for d, j in term.joules.items():
                nil = self.cm.battery_limit_w(d) == 0.0
                if nil and not within(app.rate_rps * j, 0.0):
                    return False
        return True

    def add_partitioned(self, app: App) -> None:
        """`x` per (block, host) and `t` per consecutive pair, for each model the app may
        run. Hosts are the devices of an allowed tier (`tier`), models those that meet
        `min_accuracy` (`accuracy`), and a term with no route is left out (`unreachable`)."""
        models = self.p.model_options(app)
        hosts = self.p.hosts(app)
        keep = self.pruners.get(app.id)
        chains: list[_Chain] = []
        for m in models:
            n = self.cm.shapes[m].n
            ch = _Chain(app, m, self._var(True, f"u[{app.id},{m}]") if len(models) > 1 else None)
            for i in range(n):
                self._in_time()
                for d in hosts:
                    if keep is not None and not keep.block(m, i, d):
                        continue
                    term = self.cm.block_term(app, m, i, d)
                    if not self._admits(app, term):
                        continue
                    v = ch.x[(i, d)] = self._var(True, f"x[{app.id},{m},{i},{d}]")
                    self._charge(app, v, term, self.p.migration.block_mb(app.id, m, i, d))
            for i in range(n - 1):
                for d in hosts:
                    if (i, d) not in ch.x:
                        continue
                    self._in_time()
                    for e in hosts:
                        if (i + 1, e) not in ch.x:
                            continue
                        if d == e:
                            if keep is not None and not keep.stay(m, i, d):
                                continue
                            v = self._var(False, f"t[{app.id},{m},{i},{d}]")
                        else:
                            if keep is not None and not keep.move(m, i, d, e):
                                continue
                            term = self.cm.transition_term(m, i, d, e)
                            if not self._admits(app, term):
                                continue
                            v = self._var(False, f"t[{app.id},{m},{i},{d},{e}]")
                            self._charge(app, v, term)
                            ch.moves.append(v)
                        ch.outflow[(i, d)].append(v)
                        ch.inflow[(i + 1, e)].append(v)
            chains.append(ch)
        if not models:
            self.empty_apps.append(app.id)
        self.chains[app.id] = chains

    def add_cascade(self, app: App) -> None:
        """`y` per (stage, host): each stage is a whole model on one device."""
        assert app.cascade is not None
        hosts = self.p.hosts(app)
        keep = self.pruners.get(app.id)
        y: dict[tuple[int, str], int] = {}
        for k, stage in enumerate(app.cascade):
            self._in_time()
            for d in hosts:
                if keep is not None and not keep.stage(k, d):
                    continue
                term = self.cm.stage_term(app, k, d)
                if not self._admits(app, term):
                    continue
                v = y[(k, d)] = self._var(True, f"y[{app.id},{k},{d}]")
                self._charge(app, v, term, self.p.migration.stage_mb(app.id, stage.model, d))
        self.casc[app.id] = y

    # -- constraint families ---------------------------------------------------------------
    def _row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        self._in_time()  # the rows of a large model take longer than its variables
        ct = self.mip.Constraint(lo, hi)
        for v, coef in coefs.items():
            ct.SetCoefficient(self.vars[v], coef)

    def constrain_one_placement(self) -> None:
        """Every app runs exactly one of its models, its first block on one device; every
        cascade stage runs on exactly one device (contract: a placement per app)."""
        for chains in self.chains.values():
            for ch in chains:
                row = {ch.x[(0, d)]: 1.0 for (i, d) in ch.x if i == 0}
                if ch.u is None:
                    self._row(row, 1.0, 1.0)
                else:
                    self._row({**row, ch.u: -1.0}, 0.0, 0.0)
            choices = [ch.u for ch in chains if ch.u is not None]
            if choices:
                self._row(dict.fromkeys(choices, 1.0), 1.0, 1.0)
        for app_id, y in self.casc.items():
            app = self.cm.apps[app_id]
            assert app.cascade is not None
            for k in range(len(app.cascade)):
                self._row({v: 1.0 for (s, _), v in y.items() if s == k}, 1.0, 1.0)

    def constrain_chain(self) -> None:
        """Consecutive blocks: block i on d continues on exactly one device e for block
        i+1 (flow conservation), so segments are the runs of equal devices."""
        for chains in self.chains.values():
            for ch in chains:
                n = self.cm.shapes[ch.model].n
                for (i, d), v in ch.x.items():
                    if i < n - 1:
                        self._row({**dict.fromkeys(ch.outflow[(i, d)], 1.0), v: -1.0}, 0.0, 0.0)
                    if i > 0:
                        self._row({**dict.fromkeys(ch.inflow[(i, d)], 1.0), v: -1.0}, 0.0, 0.0)

    def constrain_segments(self) -> None:
        """At most `max_stages` segments: at most `max_stages - 1` moves between devices."""
        for chains in self.chains.values():
            for ch in chains:
                n = self.cm.shapes[ch.model].n
                if ch.app.max_stages - 1 >= n - 1 or not ch.moves:
                    continue
                row = dict.fromkeys(ch.moves, 1.0)
                rhs = float(ch.app.max_stages - 1)
                if ch.u is not None:
                    row[ch.u] = -rhs
                    rhs = 0.0
                self._row(row, -math.inf, rhs)

    def _held(self) -> dict[tuple[Code, Any], float]:
        """What the apps held fixed use of every shared row (worked out once)."""
        if self._used is None:
            self._used = self._held_use()
        return self._used

    def _held_use(self) -> dict[tuple[Code, Any], float]:
        scn = self.p.scenario
        used: dict[tuple[Code, Any], float] = defaultdict(float)
        for app_id, placement in self.opt.fixed.items():
            app = self.cm.apps[app_id]
            c = app_cost(self.cm, app, placement)
            for d, s in c.compute_s.items():
                used[(Code.COMPUTE, d)] += app.rate_rps * s
            for d, mb in c.memory_mb.items():
                used[(Code.MEMORY, d)] += mb
            for d, j in c.joules.items():
                used[(Code.BATTERY, d)] += app.rate_rps * j
            for k, mb in c.link_mb.items():
                used[(Code.BANDWIDTH, k)] += app.rate_rps * mb * 8.0 / scn.links[k].mbps
        return used

    def _limit(self, family: Code, limit_of: Any) -> None:
        """Each row of `family` at most its limit, net of the apps held fixed; divided by
        a positive limit (relative tolerance), tightened by `tighten` after a refusal."""
        if family in self.relax:
            return
        used = self._held() if family in _CAPACITY else {}
        for key, row in self.rows.items():
            if key[0] != family:
                continue
            limit = limit_of(key[1]) - used.get(key, 0.0)
            scale = limit if limit > 0 else 1.0
            # Tightened relative to a positive limit; a nil one stays exactly nil.
            rhs = 1.0 - self.tighten if limit > 0 else limit
            self._row({v: coef / scale for v, coef in row.items()}, -math.inf, rhs)

    def constrain_compute(self) -> None:
        """Compute: the sum over apps of `rate_rps * expected compute seconds` on a device
        (overheads included) is at most `max_utilization`."""
        self._limit(Code.COMPUTE, lambda _: self.p.scenario.max_utilization)

    def constrain_bandwidth(self) -> None:
        """Bandwidth: the sum over apps of `rate_rps * expected MB * 8 / mbps` over a link
        (a route loads every link on it) is at most `max_utilization`."""
        self._limit(Code.BANDWIDTH, lambda _: self.p.scenario.max_utilization)

    def constrain_memory(self) -> None:
        """Memory: the `params_mb` of every block and exit head on a device (a cascade
        stage: its whole model), over all apps, at most its `memory_mb`."""
        self._limit(Code.MEMORY, lambda d: self.cm.devices[d].memory_mb)

    def constrain_battery(self) -> None:
        """Battery: the plan's power paid by a battery device is at most
        `max(0, usable_wh / horizon_h - power_w.idle)` (`costs.battery_budget_w`)."""
        self._limit(Code.BATTERY, lambda d: self.cm.battery_limit_w(d) or 0.0)

    def constrain_slo(self) -> None:
        """SLO: an app's worst-case latency (no exit taken) is at most its `slo_ms`."""
        self._limit(Code.SLO, lambda a: self.cm.apps[a].slo_ms or math.inf)

    def set_objective(self) -> None:
        """The contract's objective: the weighted sum of every term, migration included."""
        self._in_time()
        obj = self.mip.Objective()
        for v, coef in self.objective.items():
            obj.SetCoefficient(self.vars[v], coef)
        obj.SetMinimization()

    # -- solving ---------------------------------------------------------------------------
    def solve(self, time_limit_s: float, node_limit: int | None = None, cpu: bool = False) -> int:
        """SCIP's status within `time_limit_s` of wall time, or of CPU time with `cpu`."""
        self.mip.SetTimeLimit(max(1, int(time_limit_s * 1000)))
        self.mip.SetNumThreads(max(1, self.opt.threads))
        params = [
            f"numerics/feastol = {_FEASTOL}",
            "limits/gap = 0",
            "limits/absgap = 1e-12",
            f"randomization/randomseedshift = {self.opt.seed % 2**31}",
            f"timing/clocktype = {1 if cpu else 2}",
        ]
        if node_limit is not None:
            params.append(f"limits/nodes = {node_limit}")
        self.mip.SetSolverSpecificParametersAsString("\n".join(params) + "\n")
        return int(self.mip.Solve())

    def placements(self) -> dict[str, Placement]:
        out: dict[str, Placement] = {}
        for app_id, chains in self.chains.items():
            for ch in chains:
                if ch.u is not None and self.vars[ch.u].solution_value() < 0.5:
                    continue
                blocks = [""] * self.cm.shapes[ch.model].n
                for (i, d), v in ch.x.items():
                    if self.vars[v].solution_value() > 0.5:
                        blocks[i] = d
                out[app_id] = Placement(app=app_id, model=ch.model, blocks=tuple(blocks))
        for app_id, y in self.casc.items():
            app = self.cm.apps[app_id]
            assert app.cascade is not None
            stages = [""] * len(app.cascade)
            for (k, d), v in y.items():
                if self.vars[v].solution_value() > 0.5:
                    stages[k] = d
            out[app_id] = Placement(app=app_id, stages=tuple(stages))
        return out


def build(
    problem: Problem,
    options: SolveOptions,
    tighten: float,
    only: set[str] | None = None,
    relax: frozenset[Code] = frozenset(),
    upper: float | None = None,
    deadline: Deadline | None = None,
) -> ExactModel:
    """The model of the apps not held fixed (those in `only`, when given), the families
    in `relax` left out; with an upper bound, choices that cannot beat it are fixed away."""
    model = ExactModel(problem, options, tighten, relax)
    model.deadline = deadline
    if upper is not None and deadline is not None and not relax and only is None:
        model.pruners = _pruners(problem, options, upper, deadline)
    for app in problem.scenario.apps:
        if app.id in options.fixed or (only is not None and app.id not in only):
            continue
        if app.cascade is not None:
            model.add_cascade(app)
        else:
            model.add_partitioned(app)
        # A model of 20-block chains on dozens of hosts can take longer to write down
        # than the whole time limit: stop, rather than overrun it by seconds.
        model._in_time()
    model.constrain_one_placement()
    model.constrain_chain()
    model.constrain_segments()
    model.constrain_compute()
    model.constrain_bandwidth()
    model.constrain_memory()
    model.constrain_battery()
    model.constrain_slo()
    model.set_objective()
    return model


def _pruners(
    problem: Problem, options: SolveOptions, upper: float, deadline: Deadline
) -> dict[str, AppBounds]:
    """Per-app variable fixing from a feasible plan's objective (see solver.lagrange)."""
    budget = min(5.0, 0.2 * deadline.left())
    return lagrange.bounds(problem, options, upper, fixed_objective(problem, options), budget)


def fixed_objective(problem: Problem, options: SolveOptions) -> float:
    """The objective of the apps held fixed."""
    cm = problem.cost
    total = 0.0
    for app_id, p in options.fixed.items():
        app = cm.apps[app_id]
        total += cm.weighted(app, app_cost(cm, app, p))
        total += problem.scenario.objective.migration * app_migration(problem.migration, app, p)
    return total


# pywraplp.Solver's result codes (OPTIMAL, FEASIBLE, INFEASIBLE), so that deciding on a
# status needs no import of OR-Tools.
OPTIMAL, FEASIBLE, INFEASIBLE = 0, 1, 2


def solved(status: int) -> bool:
    return status in (OPTIMAL, FEASIBLE)


def feasible(
    problem: Problem,
    options: SolveOptions,
    only: set[str],
    time_limit_s: float,
    relax: frozenset[Code] = frozenset(),
    cpu: bool = False,
) -> bool | None:
    """Whether the apps in `only` fit together (with `options.fixed`), the families in
    `relax` left out; None when the time limit (CPU time with `cpu`) came first."""
    deadline = Deadline(time_limit_s, cpu)
    try:
        model = build(problem, options, 0.0, only=only, relax=relax, deadline=deadline)
    except OutOfTime:
        return None
    if model.empty_apps:
        return False
    if deadline.left() <= 0:
        return None
    status = model.solve(deadline.left(), cpu=cpu)
    if solved(status):
        return True
    return False if status == INFEASIBLE else None


__all__ = [
    "Deadline",
    "ExactModel",
    "OutOfTime",
    "build",
    "feasible",
    "fixed_objective",
    "solved",
]
