"""Baselines: the placements a fleet would get without a placement solver.

- `all-device`: every app whole on its source (on-device inference);
- `all-cloud`: every app whole on the cloud device nearest its source by route rtt;
- `neurosurgeon`: each app alone on its best single split between its source and one other
  device, ignoring the other apps (Kang et al., ASPLOS 2017).

None of them looks at shared capacity (compute, bandwidth, memory, battery), which is what
they are there to show: their plans go through the evaluator like any other, and a plan
that breaks a constraint is reported `infeasible` with its `violations` so that it can
still be compared. Apps in `options.fixed` stay where they are.

Where an app leaves a choice (a variant; neurosurgeon's split), the baseline takes the
candidate with the least own objective term (the app's weighted energy, carbon, latency
and migration) among those that meet the app's own constraints (SLO, tiers, routes,
accuracy, max_stages); when none does, the one with the fewest such violations and then
the least worst-case latency, so the plan shows how close the baseline came. Candidates
are tried in a fixed order and ties keep the first: same input, same plan.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator

from solver.costs import Cost, CostModel
from solver.document import Plan, build_plan, infeasible_plan
from solver.evaluate import app_violations
from solver.migration import app_migration
from solver.plan import Placement, Status
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.routes import RouteTable
from solver.scenario import App
from solver.splitchoice import choose
from solver.splitroutes import figure_vector
from solver.splits import AppSplits, models_of

SolverFn = Callable[[Problem, SolveOptions], Plan]


class Scorer:
    """Scores one app's candidate placements, caching the cost terms they share.

    Neurosurgeon tries every split on every device pair; each candidate reuses the same
    block and transition terms, so they are built once per (model, block, device).
    """

    def __init__(self, problem: Problem, cost: CostModel | None = None) -> None:
        """`cost`: the problem's scenario with a route table of the caller's (the same
        routes, kept as the caller sees fit); else the problem's own."""
        self.p = problem
        self.cm = problem.cost if cost is None else cost
        self._block: dict[tuple[str, str, int, str], Cost] = {}
        self._move: dict[tuple[str, int, str, str], Cost] = {}

    def cost(self, app: App, p: Placement) -> Cost:
        total = Cost()
        if p.stages is not None:
            for k, device in enumerate(p.stages):
                total.add(self.cm.stage_term(app, k, device))
            return total
        assert p.model is not None and p.blocks is not None
        for i, device in enumerate(p.blocks):
            key = (app.id, p.model, i, device)
            term = self._block.get(key)
            if term is None:
                term = self._block[key] = self.cm.block_term(app, p.model, i, device)
            total.add(term)
            nxt = p.blocks[i + 1] if i + 1 < len(p.blocks) else device
            if nxt != device:
                mkey = (p.model, i, device, nxt)
                move = self._move.get(mkey)
                if move is None:
                    move = self._move[mkey] = self.cm.transition_term(p.model, i, device, nxt)
                total.add(move)
        return total

    def key(self, app: App, p: Placement) -> tuple[int, float]:
        """Smaller is better: (own violations, objective term or worst-case ms)."""
        c = self.cost(app, p)
        broken = len(app_violations(self.cm, app, p, c))
        if broken:
            return broken, c.worst_ms
        objective = self.cm.weighted(app, c)
        w_mig = self.p.scenario.objective.migration
        if w_mig:  # adding 0 * MB would leave the key as it is
            objective += w_mig * app_migration(self.p.migration, app, p)
        return 0, objective

    def best(self, app: App, candidates: Iterable[Placement]) -> Placement | None:
        chosen: Placement | None = None
        chosen_key: tuple[int, float] | None = None
        for p in candidates:
            k = self.key(app, p)
            if chosen_key is None or k < chosen_key:
                chosen, chosen_key = p, k
        return chosen


def _whole(problem: Problem, app: App, device: str) -> Iterator[Placement]:
    """The app whole on one device: each candidate model, or every cascade stage."""
    if app.cascade is not None:
        yield Placement(app=app.id, stages=(device,) * len(app.cascade))
        return
    for m in models_of(problem, app):
        yield Placement(app=app.id, model=m, blocks=(device,) * problem.cost.shapes[m].n)


def _run(
    problem: Problem,
    options: SolveOptions,
    name: str,
    candidates: Callable[[App], Iterable[Placement]],
) -> Plan:
    scorer = Scorer(problem)
    placements: dict[str, Placement] = dict(options.fixed)
    for app in problem.scenario.apps:
        if app.id in options.fixed:
            continue
        chosen = scorer.best(app, candidates(app))
        if chosen is not None:
            placements[app.id] = chosen
    return build_plan(problem.cost, placements, Status.FEASIBLE, name)


# -- all-device ---------------------------------------------------------------------------
def solve_all_device(problem: Problem, options: SolveOptions) -> Plan:
    """Every app whole on its source."""
    return _run(problem, options, "all-device", lambda app: _whole(problem, app, app.source))


# -- all-cloud ----------------------------------------------------------------------------
def nearest_cloud(problem: Problem, source: str) -> str | None:
    """The cloud device with the least route rtt from source (itself when it is one);
    ties by id. None when no cloud device is reachable."""
    clouds = problem.derived.get("clouds")
    if not isinstance(clouds, frozenset):
        clouds = frozenset(d.id for d in problem.scenario.devices if d.tier == "cloud")
        problem.derived["clouds"] = clouds
    return problem.cost.routes.nearest(source, clouds)


def solve_all_cloud(problem: Problem, options: SolveOptions) -> Plan:
    """Every app whole on the nearest cloud device from its source."""
    clouds = sorted(d.id for d in problem.scenario.devices if d.tier == "cloud")
    if not clouds:
        reason = Reason(Code.TIER, "the fleet has no cloud device")
        return infeasible_plan(problem.cost, "all-cloud", reason)
    targets: dict[str, str] = {}
    for app in problem.scenario.apps:
        # With no reachable cloud device the app still goes to one, so that the plan
        # names the missing route instead of hiding the app.
        targets[app.id] = nearest_cloud(problem, app.source) or clouds[0]
    return _run(problem, options, "all-cloud", lambda app: _whole(problem, app, targets[app.id]))


# -- neurosurgeon ---------------------------------------------------------------------------
def _splits(problem: Problem, app: App) -> Iterator[Placement]:
    """Every single split between the source and one other reachable device of an allowed
    tier: blocks[:k] on the source, blocks[k:] on the other, k = 0..n; cascades: every
    stage on either of the two."""
    source = app.source
    others = [
        d for d in problem.hosts(app) if d != source and problem.cost.route(source, d) is not None
    ]
    if app.cascade is not None:
        # All stages on the source is one of every pair's combinations; try it once first.
        yield Placement(app=app.id, stages=(source,) * len(app.cascade))
        for other in others:
            for combo in itertools.product((source, other), repeat=len(app.cascade)):
                if other in combo:
                    yield Placement(app=app.id, stages=combo)
        return
    for m in models_of(problem, app):
        n = problem.cost.shapes[m].n
        yield Placement(app=app.id, model=m, blocks=(source,) * n)
        for other in others:
            for k in range(n):
                yield Placement(app=app.id, model=m, blocks=(source,) * k + (other,) * (n - k))


def solve_neurosurgeon_reference(problem: Problem, options: SolveOptions) -> Plan:
    """`solve_neurosurgeon` by scoring every candidate: what the fast one must equal."""
    return _run(problem, options, "neurosurgeon", lambda app: _splits(problem, app))


def solve_neurosurgeon(problem: Problem, options: SolveOptions) -> Plan:
    """Each app on its own best split, as if it had the fleet to itself: the choice of
    `solve_neurosurgeon_reference`, scoring only the candidates that may win
    (`solver.splits`)."""
    # Every app reads the routes from its source to every device and from every device
    # to its sink: found for each app in one search from each end, held for its choice,
    # then dropped. Kept in the problem's table, those of 5,000 devices did not fit in
    # 24 GB (bench/RESULTS.md).
    scratch = RouteTable(problem.scenario)
    scorer = Scorer(problem, CostModel(problem.scenario, scratch))
    figures = figure_vector(())
    placements: dict[str, Placement] = dict(options.fixed)
    for app in problem.scenario.apps:
        if app.id in options.fixed:
            continue
        s, t = app.source, app.sink_id
        frm, to = scratch.fan_out(s), scratch.fan_in(t)
        scratch.hold({(s, d): r for d, r in frm.items()})
        scratch.hold({(d, t): r for d, r in to.items()})
        splits = AppSplits(problem, app, {}, (frm, to))
        placements[app.id] = choose(splits, figures, functools.partial(scorer.key, app))[0]
        scratch.forget()
    return build_plan(problem.cost, placements, Status.FEASIBLE, "neurosurgeon")


SOLVERS: dict[str, SolverFn] = {
    "all-device": solve_all_device,
    "all-cloud": solve_all_cloud,
    "neurosurgeon": solve_neurosurgeon,
}

__all__ = [
    "SOLVERS",
    "Scorer",
    "nearest_cloud",
    "solve_all_cloud",
    "solve_all_device",
    "solve_neurosurgeon",
    "solve_neurosurgeon_reference",
]
