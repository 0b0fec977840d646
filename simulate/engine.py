"""One policy over simulated time: conditions, decisions, and the evaluator's score.

Every step (`Inputs.step_s`) the engine
1. reads the conditions of that moment: the traced links' throughput, the devices that
   are down (`--fail`, or a pack run flat), the batteries' levels;
2. moves the scenario of now: bandwidths exactly, a battery level when it is
   `battery_step_pct` points away from its figure there, a device lost or back;
   incrementally (`solver.apply_change`: routes and app costs that stay valid carry
   over), and only when something asks for the compiled problem;
3. asks the policy (`simulate.policy.Policy`) for the plan in force;
4. scores the plan in force with the solver's evaluator (`solver.evaluate`, the one
   `continuum solve` reports): the whole plan when a new plan or the fleet's shape
   changed; when a policy moved some apps (`PlanChange`) on the same fleet, those apps
   and the devices and links they touch; when only bandwidths or battery levels moved,
   only the verdicts they can flip, with the evaluator's own checks (`simulate.scoring`);
5. adds the step's energy, carbon, SLO misses and broken constraints (which ones, to
   `simulate.ledger`), and drains or charges every pack by its idle draw plus the plan's
   power, less its charge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import solver
from orchestrator.replacement import layers_of, placements_of
from simulate.decisions import Replan, log_of
from simulate.inputs import Inputs, Link
from simulate.ledger import Broken, Key, Ledger
from simulate.now import ScenarioNow
from simulate.packs import Packs
from simulate.policy import Moment, PlanChange, Policy
from simulate.probes import ProbeClock
from simulate.scoring import Verdicts, verdicts_of
from simulate.terms import Terms, terms_on
from simulate.traces import TracedSteps
from solver.costs import CostModel
from solver.evaluate import AppRecord, app_cost, app_record, app_violations, structure_errors
from solver.migration import Migration, app_migration
from solver.scenario import Link as LinkRecord

MAX_SAMPLES = 2000  # rows per policy in the time series


@dataclass
class Totals:
    energy_j: float = 0.0
    carbon_g: float = 0.0
    slo_miss_s: float = 0.0
    violation_s: float = 0.0
    replacements: int = 0
    migrated_mb: float = 0.0
    battery_dead_h: float = 0.0
    solve_s: float = 0.0  # measured: wall seconds deciding (timings.json)


@dataclass
class Sample:
    t_s: float
    totals: Totals
    power_w: float  # the plan's inference power now (idle excluded)
    violations: int  # constraints broken now
    slo_misses: int  # apps over their SLO (or not served) now
    battery_min_pct: float | None
    battery_mean_pct: float | None


@dataclass
class PolicyRun:
    name: str
    totals: Totals
    samples: list[Sample] = field(default_factory=list)
    plans: int = 0  # plans put in force, the first included
    run_s: float = 0.0  # measured: the run's wall and CPU seconds
    run_cpu_s: float = 0.0
    broken: dict[Key, Broken] = field(default_factory=dict)  # what broke, most seconds first
    replans: list[Replan] = field(default_factory=list)  # what it decided (`simulate.decisions`)


class Simulation:
    """One policy's run over the inputs."""

    # True: the evaluator scores the whole plan at every step (what the incremental
    # verdicts must equal; tests/simulate/test_scoring.py compares the two).
    evaluate_every_step = False

    def __init__(self, inputs: Inputs, name: str, policy: Policy) -> None:
        self.inputs, self.name, self.policy = inputs, name, policy
        self.base = inputs.scenario
        self.layers = layers_of(self.base)
        self.batteries = Packs(self.base, inputs.batteries)
        # Traced bandwidths: exact in the scenario of now (a run also keeps the figure the
        # last `changed` step told the policies: what matters is +-bandwidth_step of it).
        self.link_now: dict[Link, float] = {k: tr.at(0.0) for k, tr in inputs.traces.items()}
        self.probes = ProbeClock(sorted(inputs.traces), inputs.probe_s, inputs.seed)
        self.down: frozenset[str] = frozenset(self._down_at(0.0))
        self._now = ScenarioNow(self.base, self.batteries)
        self._problem = solver.Problem(solver.parse_scenario(self.scenario_now()))
        self._links_due: dict[Link, float] = {}  # Mbit/s not yet compiled
        self._up_keys: tuple[frozenset[str] | None, list[bool]] = (None, [])
        self._priced: solver.Problem | None = None  # `priced()` while no link moves
        self._link_records: dict[tuple[frozenset[str], float], LinkRecord] = {}  # `refigured`'s
        self._devices_due: dict[str, dict[str, Any]] = {}
        self._mb_moved: tuple[object, dict[tuple[solver.Placement, ...], float]] = (None, {})
        # The plan in force: its placements, and its document (None when it was put in
        # force as a `PlanChange` and no policy has read it since: written when asked).
        self.has_plan = False
        self._foreign: set[str] = set()  # apps placed on a device no scenario has
        self.plan: solver.PlanDoc | None = None
        self.placements: dict[str, solver.Placement] = {}
        self.evaluation: solver.Evaluation | None = None
        self.verdicts: Verdicts | None = None
        self.evaluations = 0  # whole evaluations
        self.moved_scorings = 0  # plans scored by the apps they moved (`_score_moved`)
        self.order = {a["id"]: k for k, a in enumerate(self.base["apps"])}
        self.horizon_h = float(self.base.get("horizon_h", 8.0))
        self.base_devices = {d["id"]: d for d in self.base["devices"]}
        self.rates = (0.0, 0.0, 0, 0)  # W, g/s, violations, SLO misses

    # -- the scenario of now ---------------------------------------------------------------
    def scenario_now(self, figures: dict[Link, float] | None = None) -> dict[str, Any]:
        """The scenario-v1 document of now (the one `problem()` compiles); with `figures`,
        the traced links at those instead (`measured`)."""
        return self._now.document(self.down, self.link_now, figures)

    def measured(self) -> dict[str, Any]:
        """The scenario of now with each traced link at the agents' latest probe of it."""
        return self.scenario_now(self.probes.measured)

    def problem(self) -> solver.Problem:
        """The scenario of now, compiled (the changes applied when asked for)."""
        if self._links_due or self._devices_due:
            change = solver.Change(links=_docs(self._links_due), devices=self._devices_due)
            self._links_due, self._devices_due, self._priced = {}, {}, None
            self._problem = solver.apply_change(self._problem, change, self._held(self.down))
        return self._problem

    def priced(self) -> solver.Problem:
        """The scenario of now as far as a placement's cost and its own verdicts read it:
        the bandwidths of now, the battery levels left for `problem()` (no cost term nor
        per-app check reads a battery, and packs move every few steps). The bandwidths
        moved since the last compile refigure it (`solver.refigured`, kept until one
        moves again) rather than being compiled into it at every step."""
        if not self._links_due:
            return self._problem
        if self._priced is None:
            self._priced = solver.refigured(
                self._problem, self._links_due, self._held(self.down), self._link_records
            )
        return self._priced

    def _down_at(self, t: float) -> set[str]:
        out = {f.device for f in self.inputs.failures if f.down(t)}
        packs = self.batteries
        # A flat pack switches its device off until it has charged back to min_pct.
        out.update(map(packs.ids.__getitem__, packs.switched_off()[0]))
        return out

    # -- one run -----------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None) -> PolicyRun:
        began, began_cpu = time.perf_counter(), time.process_time()
        inputs, packs = self.inputs, self.batteries
        dt, steps = inputs.step_s, inputs.steps
        totals = Totals()
        out, ledger = PolicyRun(self.name, totals), Ledger(dt)
        every = max(1, math.ceil(steps / MAX_SAMPLES))
        traced = TracedSteps(inputs.traces, dt, inputs.bandwidth_step)
        charge_times = sorted(
            {t for p in inputs.batteries.values() for t in p.changes_at(inputs.hours)}
        )
        packs.set_charging(0.0)
        link_now = self.link_now
        for k in range(steps):
            t = k * dt
            # A trace started a sample since the last step: the agent reports it.
            samples, moved, figures, moved_at, signal = traced.at(k)
            if moved:
                link_now.update(zip(moved, figures, strict=True))
                self._due(traced.keys, moved_at, moved, figures)
            charging_changed: np.ndarray = np.empty(0, dtype=int)
            if charge_times and charge_times[0] <= t + 1e-9:
                while charge_times and charge_times[0] <= t + 1e-9:
                    charge_times.pop(0)
                charging_changed = packs.set_charging(t)
            down = frozenset(self._down_at(t))
            lost, joined = down - self.down, self.down - down
            if lost or joined:
                packs.up = np.array([d not in down for d in packs.ids], dtype=bool)
            reports = packs.reports(down, charging_changed)
            probes = self.probes.probe(t, self.link_now, down, joined)
            device_changes = packs.changes(down, inputs.battery_step_pct)
            self._devices_due.update(device_changes)
            shape = bool(lost or joined)
            structural = bool(device_changes) or shape
            if shape:
                self._move(down, lost)
            started = time.perf_counter()
            decided = self.policy.decide(
                Moment(
                    t,
                    self.problem,
                    self.plan if self.plan is not None or not self.has_plan else self._write_plan,
                    signal or structural or k == 0,
                    self.scenario_now,
                    samples,
                    reports,
                    lost,
                    joined,
                    structural,
                    signal,
                    probes,
                    self.measured,
                    self.priced,
                )
            )
            totals.solve_s += time.perf_counter() - started
            moved_apps: dict[str, solver.Placement] | None = None
            if isinstance(decided, PlanChange):
                moved_apps = self._put_change_in_force(decided, totals, out)
                replaced = moved_apps is not None
            else:
                replaced = decided is not None and self._put_in_force(decided, totals, out)
            verdicts = self.verdicts
            whole = shape or verdicts is None or self.evaluate_every_step
            if replaced and not whole:
                # A new plan is scored whole; apps moved on the same fleet, by what they touch.
                whole = moved_apps is None or not self._score_moved(moved_apps)
            if whole:
                self._evaluate()
            else:
                assert verdicts is not None
                if moved:
                    verdicts.links_moved(self.link_now, moved, self._slo_over, self._terms)
                for device in device_changes:
                    verdicts.battery_moved(device, self._battery_limit(device))
                self.rates = verdicts.rates
            power_w, carbon_g_s, violations, misses = self.rates
            totals.energy_j += power_w * dt
            totals.carbon_g += carbon_g_s * dt
            totals.violation_s += violations * dt
            ledger.step(k, self.verdicts)
            totals.slo_miss_s += misses * dt
            totals.battery_dead_h += packs.switched_off()[1] * (dt / 3600.0)
            packs.advance(dt)
            if k % every == every - 1 or k == steps - 1:
                out.samples.append(self._sample((k + 1) * dt, totals))
                if progress is not None:
                    progress(k + 1)
        out.broken, out.replans = ledger.close(steps), log_of(self.policy)
        out.run_s = time.perf_counter() - began
        out.run_cpu_s = time.process_time() - began_cpu
        return out

    def _due(self, keys: list[Link], at: list[int], moved: list[Link], mbps: list[float]) -> None:
        """Note the `moved` links (`keys[at]`) whose ends are both up as not compiled yet."""
        if not (off := self.down):
            self._links_due.update(zip(moved, mbps, strict=True))
            self._priced = None
            return
        if self._up_keys[0] is not off:
            self._up_keys = (off, [a not in off and b not in off for a, b in keys])
        up = self._up_keys[1]
        due = [(key, v) for j, key, v in zip(at, moved, mbps, strict=True) if up[j]]
        if due:
            self._links_due.update(due)
            self._priced = None

    def _held(self, down: frozenset[str]) -> dict[str, solver.Placement]:
        if not down and not self.down:
            # The whole fleet is up: the placements whose app and hosts are in the scenario
            # are all but those noted when they were put in force.
            held = dict(self.placements)
            for a in self._foreign:
                del held[a]
            return held
        cm = self._problem.cost
        return {
            a: p
            for a, p in self.placements.items()
            if a in cm.apps and all(h in cm.devices and h not in down for h in p.hosts())
        }

    def _move(self, down: frozenset[str], lost: frozenset[str]) -> None:
        joined = bool(self.down - down)
        self.down = down
        links = _docs({k: v for k, v in self._links_due.items() if down.isdisjoint(k)})
        devices = {d: v for d, v in self._devices_due.items() if d not in down}
        self._links_due, self._devices_due = {}, {}
        self._priced = None
        if joined:
            # A device back changes the fleet's shape: compile the scenario afresh.
            self._problem = solver.Problem(solver.parse_scenario(self.scenario_now()))
            return
        change = solver.Change(devices=devices, links=links, lost_devices=lost)
        self._problem = solver.apply_change(self._problem, change, self._held(down))

    def _limit(self, cm: CostModel) -> Callable[[str], float | None]:
        """What each pack pays for now, on `cm` (the last compiled scenario); a level
        changed since, as `_battery_limit` reads it."""
        due = self._devices_due
        return lambda d: self._battery_limit(d) if d in due else cm.battery_limit_w(d)

    def _battery_limit(self, device: str) -> float | None:
        """What the pack of `device` pays for now, by the cost model's own rule."""
        return self._now.battery_limit(device, self.horizon_h)

    def _terms(self, app: str) -> Terms:  # the last compiled scenario has the fleet's paths
        return terms_on(self._problem.cost, self.link_now.keys(), app, self.placements[app])

    def _slo_over(self, apps: list[str]) -> dict[str, tuple[bool, float]]:
        """Whether each app of the plan in force is over its SLO on the scenario of now,
        by the evaluator's own per-app checks, and its worst-case ms."""
        cm = self.priced().cost
        out = {}
        for a in apps:
            app, p = cm.apps[a], self.placements[a]
            cost = app_cost(cm, app, p)
            found = app_violations(cm, app, p, cost)
            out[a] = (any(r.code == solver.Code.SLO for r in found), cost.worst_ms)
        return out

    def _valid(self, placements: dict[str, solver.Placement]) -> dict[str, solver.Placement]:
        """The placements the scenario of now can run: their app is there, and so is
        every device they host on (a lost device's apps are not served)."""
        cm = self.problem().cost
        return {
            a: p
            for a, p in placements.items()
            if a in cm.apps and all(h in cm.devices for h in p.hosts())
        }

    def _put_in_force(self, doc: solver.PlanDoc, totals: Totals, out: PolicyRun) -> bool:
        new = placements_of(self.layers, doc.apps)
        old = self.placements
        # A re-placement moves or starts an app; a plan that only drops the apps of a
        # device gone (or only predicts other latencies) is put in force uncounted.
        moves = any(old.get(a) != p for a, p in new.items())
        if self.has_plan and not moves:
            if new.keys() == old.keys():
                return False
        elif self.has_plan:
            totals.replacements += 1
            totals.migrated_mb += self._migrated(old, new)
        self.plan, self.placements, self.has_plan = doc, new, True
        self._foreign = set()
        self._note_foreign(new)
        out.plans += 1
        return True

    def _put_change_in_force(
        self, change: PlanChange, totals: Totals, out: PolicyRun
    ) -> dict[str, solver.Placement] | None:
        """The plan in force with the apps of `change` placed elsewhere; the apps it moves
        (None: it moves none, and nothing is put in force)."""
        old = self.placements
        moved = {a: p for a, p in change.placements.items() if old.get(a) != p}
        if self.has_plan and not moved:
            return None
        if self.has_plan:
            totals.replacements += 1
            totals.migrated_mb += self._migrated_apps(moved)
        self.placements.update(moved)
        self._note_foreign(moved)
        self.plan, self.has_plan = None, True
        out.plans += 1
        return moved

    def _note_foreign(self, placements: dict[str, solver.Placement]) -> None:
        """Note the placements whose app or a host is not in the scenario at all."""
        for a, p in placements.items():
            if a in self.order and p.hosts() <= self.base_devices.keys():
                self._foreign.discard(a)
            else:
                self._foreign.add(a)

    def _migrated_apps(self, moved: dict[str, solver.Placement]) -> float:
        """`_migrated` of a change moving only `moved`: the same terms in the scenario's
        order, on the last compiled scenario (migration reads no bandwidth or battery)."""
        cm = self._problem.cost
        old = self.placements
        if self._mb_moved[0] is not cm:
            self._mb_moved = (cm, {})  # each app's term, of its two placements alone
        mig, memo = Migration(cm, old), self._mb_moved[1]
        terms = []
        for a in sorted(moved, key=self.order.__getitem__):
            p, app = moved[a], cm.apps.get(a)
            if app is None or a not in old or not all(h in cm.devices for h in p.hosts()):
                continue
            if (mb := memo.get((old[a], p))) is None and not structure_errors(cm, app, p):
                mb = memo[(old[a], p)] = app_migration(mig, app, p)
            if mb is not None:
                terms.append(mb)
        return sum(terms)

    def _score_moved(self, moved: dict[str, solver.Placement]) -> bool:
        """Score the plan in force after `moved` by what they change (`Verdicts.apps_moved`),
        when they are served apps of the fleet of the last whole evaluation placed where
        the scenario of now can run them; False (nothing done) otherwise."""
        verdicts = self.verdicts
        assert verdicts is not None
        apps = sorted(moved, key=self.order.__getitem__)
        costs = [verdicts.cost_at(moved[a], self.link_now) for a in apps]
        # The last compiled scenario has the fleet of now; unless a cost must be made (it
        # reads bandwidths), it serves without compiling the scenario of now. The battery
        # levels since are read from the changes not yet compiled (`_limit`).
        problem = self.priced() if any(c is None for c in costs) else self._problem
        cm = problem.cost
        mig = Migration(cm)  # as the whole evaluation counts it: against no previous plan
        records: dict[str, AppRecord] = {}
        for a, cost in zip(apps, costs, strict=True):
            p, app = moved[a], cm.apps.get(a)
            if app is None or a not in verdicts.records:
                return False
            if not all(h in cm.devices for h in p.hosts()):
                return False
            made = app_record(cm, app, p, mig, problem.app_costs, cost)
            if not isinstance(made, AppRecord):
                return False
            records[a] = made
        touched = verdicts.apps_moved(cm, records, self.link_now, self._limit(cm))
        packs = self.batteries
        for d in touched:
            k = packs.index.get(d)
            if k is not None:
                packs.set_plan_w(k, verdicts.power[d])
        self.evaluation = None  # the verdicts hold the plan's figures now
        self.moved_scorings += 1
        return True

    def _write_plan(self) -> solver.PlanDoc:
        """The document of the plan in force (put in force as a `PlanChange`), written by
        the evaluator on the scenario of now, when a policy first reads it."""
        if self.plan is None:
            problem = self.problem()
            self.plan = solver.build_plan(
                problem.cost,
                self._valid(self.placements),
                solver.Status.FEASIBLE,
                self.name,
                cache=problem.app_costs,
            ).doc
        return self.plan

    def _migrated(
        self, old: dict[str, solver.Placement], new: dict[str, solver.Placement]
    ) -> float:
        """MB of weights the new plan moves, as the contract's migration term counts it."""
        now = self.problem()
        problem = solver.Problem(now.scenario, now.cost, previous=old)
        # An app that stays where it was moves nothing (its term is 0.0, which leaves the
        # sum as it is): only the others are evaluated. Same cost model: the costs the
        # plan's evaluation (or its policy) made are reused.
        moved = {a: p for a, p in self._valid(new).items() if a in old and old[a] != p}
        ev = solver.evaluate(
            problem.cost,
            moved,
            require_all=False,
            cache=now.app_costs,
            migration=problem.migration,
        )
        return sum(ev.migration_mb.values())

    def _evaluate(self) -> None:
        problem = self.problem()
        # The whole plan afresh (not on top of the last evaluation): the sums by device
        # and link are then the very additions `Verdicts.apps_moved` makes again.
        ev = solver.evaluate(problem.cost, self._valid(self.placements), cache=problem.app_costs)
        self.evaluation = ev
        self.evaluations += 1
        traced = {
            k: v
            for k, v in self.link_now.items()
            if k[0] not in self.down and k[1] not in self.down
        }
        self.verdicts = verdicts_of(ev, traced, (a.id for a in problem.scenario.apps))
        self.rates = self.verdicts.rates
        packs = self.batteries
        packs.plan_w = np.array([ev.power_w.get(d, 0.0) for d in packs.ids], dtype=float)

    def _sample(self, t: float, totals: Totals) -> Sample:
        level = self.batteries.level if len(self.batteries.ids) else None
        low, mean = (None, None) if level is None else (float(level.min()), float(level.mean()))
        w, _, broken, misses = self.rates
        return Sample(t, Totals(**vars(totals)), w, broken, misses, low, mean)


def _docs(mbps: dict[Link, float]) -> dict[Link, dict[str, Any]]:
    return {k: {"mbps": v} for k, v in mbps.items()}


__all__ = ["PolicyRun", "Sample", "Simulation", "Totals"]
