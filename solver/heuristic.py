"""`heuristic`: fast, near-optimal placement for large fleets.

Design, and why:
1. Candidate hosts per app (`solver.hosts.pick_hosts`). On small fleets every host of
   an allowed tier, so that step 2 is exact. On large ones the source and sink, their
   neighbours, and the edges' and clouds' neighbours that are not end devices (the
   camera -> edge -> cloud shape of real fleets; for an app kept off the clouds, the
   edges behind them too), nearest 10 by route rtt. Routes are only computed between
   those few devices, so a fleet of 10,000 costs what its neighbourhoods cost.
2. Per-app candidates by an exact DP over the block chain (layered graph of (block, host,
   segments used)), vectorised over every app of a model, with the worst-case SLO by
   Lagrangian relaxation; a cascade's stage combinations are enumerated (exact). Each app
   keeps its best path per model (variants), the fastest path, and whole-model-on-one-host
   placements, the natural fallbacks when a shared resource fills up. Ignoring capacities
   these per-app optima are the global optimum (so within a few tenths of a percent of
   `ilp` when capacity does not bind), and the sum of per-app Lagrangian bounds is a
   valid lower bound when the host sets are complete.
3. Assignment under shared capacity: apps in decreasing regret (second-best minus best
   estimate) take their cheapest candidate that fits the residual compute, memory,
   battery and bandwidth (`solver.fastcost.Scorer` books a placement's exact use).
4. Repair: an app with no fitting candidate re-runs its DP with the hosts and transfers
   that overflowed forbidden, a few rounds (a cutting loop); the source's battery, which
   pays for the input wherever the model runs, is priced instead (Lagrangian).
5. Local search: every app not on its cheapest candidate tries the cheaper ones, and a
   fresh DP against the residual capacity, until a pass improves nothing.
On large fleets the bound is `solver.fleetbound`'s, three quarters of its apps in a
second process with `options.threads` > 1 (`solver.aside`): the same float either way.
The evaluator has the last word: a plan it finds broken is never returned as feasible.
Deterministic: no randomness, ties go to the lower index; `options.seed` is unused.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

import numpy as np

from solver.appcandidates import Entry, memo_of
from solver.aside import Aside
from solver.candidates import (
    Candidate,
    all_single,
    battery_arrays,
    cascade_options,
    chain_arrays,
    fleet_of,
    priced,
    slo_paths,
)
from solver.document import Plan, build_plan, infeasible_plan
from solver.fastcost import INF, CandidateRoutes, Score, Scorer, candidate_routes
from solver.fleetbound import FleetBound
from solver.gcpause import paused_gc
from solver.held import base_evaluation, book_fixed
from solver.hosts import adjacency, pick_hosts
from solver.ownpack import own_pack
from solver.plan import Placement, Status
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.ripup import ripup
from solver.scenario import App
from solver.stuck import held_clear, no_room, overflows_unheld, resources_of, stuck_at
from solver.verdict import Stuck

NAME = "heuristic"
HOSTS = 10  # candidate hosts per app on large fleets
# The share of the large-fleet bound's apps computed aside (bench/RESULTS.md, 10,000 devices).
_ASIDE = 0.75
_MARGIN = 1e-9  # under each limit (relative): the evaluator sums in another order
_SINGLES = 3
_REPAIR_ROUNDS = 6
_PRICE_RAISES = 8  # tenfold each, from the unpriced optimum
_PRICE_STEPS = 6  # bisections of the price once one fits


@dataclass(slots=True)
class _App:
    app: App
    routes: CandidateRoutes
    candidates: list[Candidate] = field(default_factory=list)
    scores: dict[int, Score] = field(default_factory=dict)
    lower: float = INF
    slo_only: bool = False  # some model is routable and fits, but no path meets the SLO
    complete: bool = True  # every allowed host is a candidate host
    chosen: int = -1
    tipped: bool = False  # a path `reroute` tried overflowed only for the held apps' load


class _State:
    def __init__(self, problem: Problem, options: SolveOptions, only: Collection[str] = ()):
        self.problem = problem
        self.options = options
        self.fleet = fleet_of(problem)
        self.scorer = Scorer(self.fleet, problem.migration)
        self.cap = self.fleet.capacity * (1.0 - _MARGIN)
        self.load = np.zeros(len(self.fleet.capacity))
        self.fixed_objective = book_fixed(
            problem, options.fixed, self.fleet, self.scorer, self.load
        )
        self.fixed_load = self.load.copy()
        self.complete = True
        adj = adjacency(problem, self.fleet)
        self.apps: dict[str, _App] = {}
        self.memo = memo_of(problem)  # apps whose candidates an earlier problem made
        self.known: set[str] = set()
        for app in problem.scenario.apps:
            if app.id in options.fixed or (only and app.id not in only):
                continue
            if (hit := self.memo.get(problem, app)) is not None:
                self.complete &= hit.complete
                self.apps[app.id] = _App(
                    app, hit.routes, list(hit.candidates), {}, hit.lower, hit.slo_only, hit.complete
                )
                self.known.add(app.id)
                continue
            hosts = pick_hosts(problem, self.fleet, adj, app, HOSTS)
            complete = len(hosts) == len(self.fleet.hosts_of(app.allowed_tiers))
            self.complete &= complete
            routes = candidate_routes(self.fleet, app, hosts, upward_only=not complete)
            self.apps[app.id] = _App(app, routes, complete=complete)

    # -- candidates ----------------------------------------------------------------------
    def _placement(self, e: _App, model: str, path: np.ndarray) -> Placement:
        names = self.fleet.names[np.asarray(e.routes.hosts)[path]]
        return Placement(app=e.app.id, model=model, blocks=tuple(names.tolist()))

    def generate(self) -> None:
        groups: dict[str, list[_App]] = {}
        made = [e for a, e in self.apps.items() if a not in self.known]
        for e in made:
            if not e.routes.hosts:
                continue  # no device of an allowed tier: no candidate, said by why_empty
            if e.app.cascade is not None:
                combos, best = cascade_options(self.problem, self.fleet, e.app, e.routes)
                for est, hosts in combos:
                    stages = tuple(self.fleet.ids[h] for h in hosts)
                    e.candidates.append(Candidate(Placement(app=e.app.id, stages=stages), est))
                e.lower = best
                e.slo_only = not combos and e.app.slo_ms is not None
                continue
            for m in self.problem.model_options(e.app):
                groups.setdefault(m, []).append(e)
        for m, members in groups.items():
            ch = chain_arrays(
                self.problem, self.fleet, [e.app for e in members], m, [e.routes for e in members]
            )
            slo = np.array([e.app.slo_ms if e.app.slo_ms is not None else INF for e in members])
            cost, _, path, lower = slo_paths(ch, slo)
            single, single_w = all_single(ch)
            for a, e in enumerate(members):
                e.lower = min(e.lower, float(lower[a]))
                if np.isfinite(cost[a]):
                    e.candidates.append(Candidate(self._placement(e, m, path[a]), float(cost[a])))
                fine = np.flatnonzero(np.isfinite(single[a]) & (single_w[a] <= slo[a] * (1 + 1e-9)))
                for k in fine[np.argsort(single[a, fine], kind="stable")][:_SINGLES]:
                    e.candidates.append(
                        Candidate(
                            self._placement(e, m, np.full(ch.u.shape[1], k)), float(single[a, k])
                        )
                    )
                if not np.isfinite(cost[a]) and np.isfinite(ch.u[a].min(axis=1)).all():
                    e.slo_only = True
        for e in made:
            seen: set[Placement] = set()
            unique = []
            for c in sorted(e.candidates, key=lambda c: c.estimate):
                if c.placement not in seen:
                    seen.add(c.placement)
                    unique.append(c)
            e.candidates = unique
            key = self.problem.migration.key(e.app.id)
            entry = Entry(e.app, key, e.routes, e.complete, tuple(unique), e.lower, e.slo_only)
            self.memo.put(entry)

    def why_empty(self, e: _App) -> Reason:
        app = e.app

        def reason(code: Code, what: str) -> Reason:
            # Candidates are made per app, whatever the others hold: the app's own fault.
            return Reason(code, f"app {app.id}: {what}", app.id, alone=True)

        if app.variants is not None and not self.problem.model_options(app):
            return reason(Code.ACCURACY, "no variant meets min_accuracy")
        if e.slo_only:
            return reason(Code.SLO, "its slo_ms cannot be met on any placement")
        if not e.routes.hosts:
            return reason(Code.TIER, f"no device of its allowed_tiers {list(app.allowed_tiers)}")
        if not (e.routes.in_ok.any() and e.routes.out_ok.any()):
            return reason(
                Code.UNREACHABLE,
                "no host of its allowed_tiers has routes from its source and to its sink",
            )
        return reason(
            Code.MEMORY, "no placement satisfies its allowed_tiers, routes and device memory"
        )

    # -- capacity ------------------------------------------------------------------------
    def score(self, e: _App, j: int) -> Score:
        sc = e.scores.get(j)
        if sc is None:
            sc = e.scores[j] = self.scorer.score(e.app, e.candidates[j].placement)
        return sc

    def fits(self, sc: Score) -> bool:
        return bool(np.all(self.load[sc.resources] + sc.amounts <= self.cap[sc.resources]))

    def take(self, e: _App, j: int) -> None:
        sc = self.score(e, j)
        self.load[sc.resources] += sc.amounts
        e.chosen = j

    def release(self, e: _App) -> None:
        sc = self.score(e, e.chosen)
        self.load[sc.resources] -= sc.amounts
        e.chosen = -1

    def overflow(self, sc: Score) -> list[int]:
        over = self.load[sc.resources] + sc.amounts > self.cap[sc.resources]
        return [int(r) for r in sc.resources[over]]

    def assign(self) -> list[_App]:
        def regret(e: _App) -> float:
            c = e.candidates
            return c[1].estimate - c[0].estimate if len(c) > 1 else INF

        order = sorted(self.apps.values(), key=lambda e: -regret(e))
        unplaced = []
        for e in order:
            for j in range(len(e.candidates)):
                if self.fits(self.score(e, j)):
                    self.take(e, j)
                    break
            else:
                unplaced.append(e)
        return unplaced

    def reroute(self, e: _App, limit: float) -> int | None:
        """A fresh DP with the overflowing hosts and transfers forbidden, a few rounds:
        the index of a new fitting candidate cheaper than `limit`, or None.

        Forbidding cannot relieve the source's battery, which pays for sending the input
        wherever it goes: when forbidding the source as a host left it overflowing, or no
        path, it is hosted again and its battery priced instead (`_priced`)."""
        app, hosts = e.app, e.routes.hosts
        k = len(hosts)
        forbid = np.zeros((k, k), dtype=bool)
        f, routes = self.fleet, self.problem.cost.routes
        pos = {h: i for i, h in enumerate(hosts)}
        src = f.index[app.source]
        battery: list[int] = []  # [] until the source's battery is priced, then [src]
        plain = INF  # the cheapest cost without a price, where pricing starts from
        for _ in range(_REPAIR_ROUNDS):
            best: tuple[float, Placement] | None = None
            if app.cascade is not None:
                if forbid.any():
                    break
                combos, _ = cascade_options(self.problem, f, app, e.routes, keep=64, frugal=8)
                for est, hs in combos:
                    if est < limit:
                        p = Placement(app=app.id, stages=tuple(f.ids[h] for h in hs))
                        sc = self.scorer.score(app, p)
                        if self.fits(sc):
                            e.candidates.append(Candidate(p, est))
                            e.scores[len(e.candidates) - 1] = sc
                            return len(e.candidates) - 1
                        e.tipped |= not overflows_unheld(self, sc)
                return None
            slo = np.array([app.slo_ms if app.slo_ms is not None else INF])
            if battery:
                best = self._priced(e, forbid, battery, plain)
            else:
                for m in self.problem.model_options(app):
                    ch = chain_arrays(self.problem, f, [app], m, [e.routes], [forbid])
                    dp_cost, _, path, _ = slo_paths(ch, slo)
                    if np.isfinite(dp_cost[0]) and (best is None or dp_cost[0] < best[0]):
                        best = (float(dp_cost[0]), self._placement(e, m, path[0]))
            if best is None and not battery and src in pos and forbid[pos[src], pos[src]]:
                battery.append(src)  # no path off its source: price its battery there
                forbid[pos[src], pos[src]] = False
                continue
            if best is None or best[0] >= limit:
                return None
            plain = min(plain, best[0])
            sc = self.scorer.score(app, best[1])
            if self.fits(sc):
                e.candidates.append(Candidate(best[1], best[0]))
                e.scores[len(e.candidates) - 1] = sc
                return len(e.candidates) - 1
            before, priced_before = forbid.copy(), len(battery)
            e.tipped |= not overflows_unheld(self, sc)
            for r in self.overflow(sc):
                if r < 3 * f.n:
                    d = r % f.n
                    if r == 2 * f.n + src:
                        if battery:
                            continue  # even the least battery found overflows it
                        if d not in pos or before[pos[d], pos[d]]:
                            battery.append(src)  # forbidding it did not help: price it
                            if d in pos:
                                forbid[pos[d], pos[d]] = False
                            continue
                    if d in pos:
                        forbid[pos[d], pos[d]] = True
                    continue
                link = r - 3 * f.n
                for a, h in enumerate(hosts):
                    for b, g in enumerate(hosts):
                        if a != b:
                            rt = routes.route(f.ids[h], f.ids[g])
                            if rt is not None and link in rt.links:
                                forbid[a, b] = True
                    for x, y in ((app.source, f.ids[h]), (f.ids[h], app.sink_id)):
                        rt = routes.route(x, y) if x != y else None
                        if rt is not None and link in rt.links:
                            forbid[a, a] = True
            if (forbid == before).all() and len(battery) == priced_before:
                return None
        return None

    def _priced(
        self, e: _App, forbid: np.ndarray, battery: list[int], plain: float
    ) -> tuple[float, Placement] | None:
        """The cheapest SLO-meeting path whose use of the `battery` devices fits, by a
        Lagrangian price on their power (per watt of what is left of each), raised tenfold
        from `plain` (the unpriced optimum) until it fits, then bisected a few times. Else
        the path at the highest price, the least battery found, for the caller to see
        what else overflows. The estimate is the scorer's objective."""
        app, f = e.app, self.fleet
        rows = np.array([2 * f.n + d for d in battery])
        room = np.maximum(self.cap[rows] - self.load[rows], 1e-12)
        weights = {d: 1.0 / w for d, w in zip(battery, room, strict=True)}
        slo = np.array([app.slo_ms if app.slo_ms is not None else INF])
        chains = []
        for m in self.problem.model_options(app):
            ch = chain_arrays(self.problem, f, [app], m, [e.routes], [forbid])
            ub, tb = battery_arrays(self.problem, f, app, m, e.routes, weights)
            chains.append((m, ch, ub, tb))

        def at(mu: float) -> tuple[Placement, Score, bool] | None:
            found: tuple[float, Placement] | None = None
            for m, ch, ub, tb in chains:
                value, _, path, _ = slo_paths(priced(ch, ub, tb, mu), slo)
                if np.isfinite(value[0]) and (found is None or value[0] < found[0]):
                    found = (float(value[0]), self._placement(e, m, path[0]))
            if found is None:
                return None
            sc = self.scorer.score(app, found[1])
            use = dict(zip(sc.resources.tolist(), sc.amounts.tolist(), strict=True))
            ok = all(self.load[r] + use.get(int(r), 0.0) <= self.cap[r] for r in rows)
            return found[1], sc, ok

        lo, hi = 0.0, max(plain, 1e-12)
        last = None
        for _ in range(_PRICE_RAISES):
            last = at(hi)
            if last is None or last[2]:
                break
            lo, hi = hi, hi * 10.0
        if last is None or not last[2]:
            return None if last is None else (last[1].objective, last[0])
        best = last
        for _ in range(_PRICE_STEPS):
            mu = np.sqrt(lo * hi) if lo > 0 else hi / 10.0
            got = at(float(mu))
            if got is None or not got[2]:
                lo = float(mu)
                continue
            hi = float(mu)
            if (not self.fits(got[1]), got[1].objective) < (
                not self.fits(best[1]),
                best[1].objective,
            ):
                best = got
        return best[1].objective, best[0]

    def improve(self, deadline: float) -> None:
        for _ in range(4):
            changed = False
            for e in self.apps.values():
                if e.chosen <= 0 or time.perf_counter() > deadline:
                    continue
                current = e.candidates[e.chosen].estimate
                j_now = e.chosen
                self.release(e)
                for j in range(len(e.candidates)):
                    if e.candidates[j].estimate < current and self.fits(self.score(e, j)):
                        self.take(e, j)
                        break
                else:
                    j_new = self.reroute(e, current * (1 - 1e-9))
                    self.take(e, j_new if j_new is not None else j_now)
                changed |= e.chosen != j_now
            if not changed:
                return


def solve_greedy(problem: Problem, options: SolveOptions) -> Plan:
    """Steps 1-5 alone, without the exact model's polish (the exact model's incumbent)."""
    return greedy(problem, options)[0]


def greedy(problem: Problem, options: SolveOptions) -> tuple[Plan, Stuck | None, dict[str, float]]:
    """Steps 1-5, and what the polish needs besides the plan (see `_solve`)."""
    with paused_gc():
        return _solve(problem, options)


def _solve(problem: Problem, options: SolveOptions) -> tuple[Plan, Stuck | None, dict[str, float]]:
    """The greedy plan; where it got stuck when it found none for lack of room; and each
    free app's lower bound over every host (empty when the host sets are not complete)."""
    deadline = time.perf_counter() + options.time_limit_s
    st = _State(problem, options)
    far = None
    if not st.complete and not options.fixed:
        # Candidates are a neighbourhood: the bound counts every other host too (not around fixed
        # apps: that would bound the plans keeping them, and costs a re-solve's time). It needs the
        # candidates' routes alone: with a second core, most of it aside (`solver.aside`), the rest
        # here once the plan is built (all of it without a second core: a solve that finds
        # none, most of a re-plan's failing solves, makes none of it); the same float.
        routed = [(e.app, e.routes) for e in st.apps.values()]
        cut = math.ceil(len(routed) * _ASIDE)
        fork = options.threads > 1
        bound = functools.cache(lambda: FleetBound(problem, st.fleet))
        if fork:
            bound().ready()
        aside = Aside(lambda: bound().lower(routed[:cut]), fork)
        far = (aside, bound, routed[cut:])
    try:
        return _steps(problem, options, st, far, deadline)
    finally:
        if far is not None:
            far[0].cancel()


def _steps(
    problem: Problem,
    options: SolveOptions,
    st: _State,
    far: tuple[Aside, Callable[[], FleetBound], list[tuple[App, CandidateRoutes]]] | None,
    deadline: float,
) -> tuple[Plan, Stuck | None, dict[str, float]]:
    cm = problem.cost
    st.generate()
    for e in st.apps.values():
        if not e.candidates:
            # Over every host (a complete host set) the per-app DP is a proof.
            why = st.why_empty(e)
            proof = Stuck(e.app.id, (), "", why.code, why) if st.complete else None
            return infeasible_plan(cm, NAME, why), proof, {}
    over = np.flatnonzero(st.load > st.cap)
    if over.size:
        code, names = resources_of(st.fleet, [int(r) for r in over])
        reason = Reason(code, f"the fixed apps alone exceed a shared capacity ({names})")
        return infeasible_plan(cm, NAME, reason), None, {}
    for e in st.assign():
        j = st.reroute(e, INF)
        if j is None and ripup(st, e, st.apps.values()):
            continue
        if j is None:
            why, names = no_room(st, e)
            own = own_pack(problem, st.fleet, e.app, e.routes, st.cap)
            reason = own or replace(why, held_clear=held_clear(st, e))
            return infeasible_plan(cm, NAME, reason), stuck_at(st, e, why.code, names), {}
        st.take(e, j)
    st.improve(deadline)
    placements = {**options.fixed}
    for app in problem.scenario.apps:
        entry = st.apps.get(app.id)
        if entry is not None:
            placements[app.id] = entry.candidates[entry.chosen].placement
    bound = None
    if st.complete and all(np.isfinite(e.lower) for e in st.apps.values()):
        bound = st.fixed_objective + sum(e.lower for e in st.apps.values())
    plan = build_plan(
        cm, placements, Status.FEASIBLE, NAME, bound=bound, cache=problem.app_costs,
        migration=problem.migration, base=base_evaluation(problem),
    )  # fmt: skip
    if plan.status == Status.INFEASIBLE:
        assert plan.evaluation is not None and plan.evaluation.found
        first = plan.evaluation.found[0]
        what = f"no plan found that the evaluator accepts: {first.message}"
        return infeasible_plan(cm, NAME, Reason(first.code, what, first.app)), None, {}
    stated = bound
    if far is not None:  # asked for only now: the child's work overlaps the plan's too
        aside, shared, rest = far
        mine = shared().lower(rest) if rest else 0.0
        fleet = aside.result() + mine
        stated = float(st.fixed_objective + fleet) if np.isfinite(fleet) else None
    assert plan.evaluation is not None  # noted, not set: `build_plan` writes when read
    plan.note("bound", None if stated is None else min(stated, plan.evaluation.objective))
    # An app's own bound holds over every host only when its candidates are all of them.
    lower = {a: e.lower for a, e in st.apps.items()} if st.complete and bound is not None else {}
    return plan, None, lower


__all__ = ["HOSTS", "NAME", "greedy", "solve_greedy"]
