"""The incremental verdicts (simulate/scoring.py) against the evaluator run on the whole
plan at every step: the same figures, step for step, on the example fleet with two real
traces on its links, packs draining fast enough to move their constraints, and a
failure (a device lost and back)."""

from __future__ import annotations

import random
from dataclasses import astuple
from types import SimpleNamespace

import pytest

import solver
from simulate.engine import PolicyRun, Sample, Simulation
from simulate.inputs import Inputs, load_scenario_dict, prepare
from simulate.registry import known, make
from simulate.run import context
from simulate.scoring import Verdicts
from simulate.terms import floors_of, terms_on
from solver.generate import generate
from tests.simulate.fleets import ROOT, TRACES, camera_traces, first_edge

WALKING = TRACES / "5gophers" / "All-Carriers_03-User-Mobility_walking-trace.csv"


def example(name: str, steps: int) -> Inputs:
    """The example fleet with two real traces, small packs over a 1 h horizon, cam-5 on
    the mains from 0.04 h, and edge-b lost and back."""
    scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    # Small packs over a 1 h horizon: levels cross half a point every minute or so, and
    # what a pack pays for falls with them, so that battery constraints flip on the way.
    scn["horizon_h"] = 1
    for d in scn["devices"]:
        if d.get("battery"):
            d["battery"] = {**d["battery"], "capacity_wh": 10.0}
    # cam-5's pack pays for 0.1 W a point above 51% less its 2.5 W idle: 0.65 W at 51.5%,
    # about what its app draws; it drains under it, then charges from the mains at 0.04 h.
    cam5 = next(d for d in scn["devices"] if d["id"] == "cam-5")
    cam5["battery"]["level_pct"] = 51.5
    return prepare(
        scn, "factory-line", [name], known(), hours=steps / 3600,
        traces=[
            f"edge-a~cloud-gpu={TRACES / 'hsdpa-norway' / 'norway_bus_1'}",
            f"cam-6~edge-b={WALKING}",
        ],
        batteries=["cam-5=mains:0.04:20W"], failures=["edge-b@0.02:0.01"],
    )  # fmt: skip


def run(name: str, steps: int, every_step: bool) -> tuple[PolicyRun, int]:
    inputs = example(name, steps)
    sim = Simulation(inputs, name, make(context(inputs, name)))
    sim.evaluate_every_step = every_step
    return sim.run(), sim.evaluations


def figures(s: Sample) -> tuple[object, ...]:
    return (s.t_s, astuple(s.totals)[:-1], *astuple(s)[2:])  # solve_s, a wall time, aside


@pytest.mark.parametrize(("name", "steps"), [("static", 240), ("neurosurgeon", 120)])
def test_incremental_verdicts_equal_the_whole_evaluation(name: str, steps: int) -> None:
    fast, evaluations = run(name, steps, every_step=False)
    whole, every = run(name, steps, every_step=True)
    assert every == steps and evaluations < every  # the fast path did skip evaluations
    assert [figures(s) for s in fast.samples] == [figures(s) for s in whole.samples]
    assert astuple(fast.totals)[:-1] == astuple(whole.totals)[:-1]  # solve_s aside
    # The run moved what the verdicts follow: constraints broken at some steps, not all.
    assert len({s.violations for s in whole.samples}) > 2


def generated(steps: int) -> Inputs:
    """A generated fleet with real traces on half its camera uplinks, small packs over a
    1 h horizon (their constraints flip as they drain), and an edge box lost and back."""
    scn = generate(11, devices=24, apps=12, overheads=True)
    scn["horizon_h"] = 1
    for d in scn["devices"]:
        if d.get("battery"):
            d["battery"] = {**d["battery"], "capacity_wh": 5.0}
    traces = camera_traces(scn)
    edge = first_edge(scn)
    return prepare(
        scn, "generated-24", ["neurosurgeon"], known(), hours=steps / 3600, traces=traces,
        failures=[f"{edge}@{60 / 3600}:{30 / 3600}"],
    )  # fmt: skip


class Checked(Simulation):
    """After every move scored by its apps, the sums by device and link are those of the
    whole plan evaluated afresh on the scenario of now compiled anew, to the last bit."""

    def _score_moved(self, moved: dict[str, solver.Placement]) -> bool:
        done = super()._score_moved(moved)
        if done:
            problem = solver.Problem(solver.parse_scenario(self.scenario_now()))
            ev = solver.evaluate(problem.cost, self._valid(self.placements))
            v = self.verdicts
            assert v is not None
            assert (v.util, v.mem, v.power, v.mbit) == (
                ev.utilization, ev.memory_mb, ev.power_w, ev.link_mbit
            )  # fmt: skip
            assert v.records.keys() == ev.records.keys()
            assert [r.cost.energy_j for r in v.records.values()] == [
                r.cost.energy_j for r in ev.records.values()
            ]
        return done


def test_apps_moved_equal_the_whole_evaluation_step_by_step() -> None:
    """Neurosurgeon moves a few apps at most steps (a `PlanChange`): scored by what they
    touch, every step's figures (totals, power, constraints broken, SLO misses, battery
    levels) are those of the whole plan evaluated afresh at every step."""
    inputs = generated(200)
    runs = []
    for every_step in (False, True):
        kind = Simulation if every_step else Checked
        sim = kind(inputs, "neurosurgeon", make(context(inputs, "neurosurgeon")))
        sim.evaluate_every_step = every_step
        runs.append((sim.run(), sim))
    (fast, fast_sim), (whole, whole_sim) = runs
    assert len(fast.samples) == 200  # a sample at every step
    assert [figures(s) for s in fast.samples] == [figures(s) for s in whole.samples]
    assert astuple(fast.totals)[:-1] == astuple(whole.totals)[:-1]
    # The fast path scored the moves by their apps (the whole plan only on the first step,
    # the loss and the return), and the run moved what the figures follow.
    assert fast_sim.moved_scorings > 30 and fast_sim.evaluations == 3
    assert whole_sim.moved_scorings == 0 and whole_sim.evaluations == 200
    assert fast.totals.replacements > 30
    assert len({s.violations for s in whole.samples}) > 1
    assert len({s.battery_min_pct for s in whole.samples}) > 100


def test_an_apps_floors_are_where_the_bound_stops_finding_it_within() -> None:
    """At its floors (`floors_of`) the bound finds an app within its SLO; with any one
    link a billionth under its floor, it no longer does. So skipping the apps on a link at
    or above every floor there skips only verdicts the bound would give unchanged."""
    rng = random.Random(5)
    checked = 0
    for _ in range(2000):
        worst = rng.uniform(1.0, 500.0)
        slo = worst * rng.uniform(0.9, 3.0)
        figures = tuple(rng.uniform(0.5, 200.0) for _ in range(rng.randint(1, 3)))
        v = SimpleNamespace(app_ref={"app": (worst, slo, figures)})
        floors = floors_of(worst, slo, figures)
        if floors is None:
            assert Verdicts._bound(v, "app", figures) is not False  # type: ignore[arg-type]
            continue
        checked += 1
        assert Verdicts._bound(v, "app", floors) is False  # type: ignore[arg-type]
        for k in range(len(floors)):
            under = tuple(f * (1 - 1e-9) if j == k else f for j, f in enumerate(floors))
            assert Verdicts._bound(v, "app", under) is not False  # type: ignore[arg-type]
    assert checked > 1500


def test_the_worst_case_summed_by_route_is_the_evaluators() -> None:
    """An app's worst ms summed from its terms (`terms_on`: fixed, and per route the ms
    at 1 Mbit/s over the route's Mbit/s) is the evaluator's on the scenario recompiled at
    the figures of the moment, to 1e-12; the verdicts `_summed` gives are the evaluator's,
    among them many the bound leaves to it."""
    scn = generate(11, devices=24, apps=12, overheads=True)
    problem = solver.Problem(solver.parse_scenario(scn))
    plan = solver.solve(problem, solver.SolveOptions(time_limit_s=10)).placements
    ev = solver.evaluate(problem.cost, plan)
    links = problem.scenario.links
    rng = random.Random(3)
    more = checked = 0
    for app, rec in ev.records.items():
        crossed = sorted(rec.cost.link_mb)
        if not crossed or rec.app.slo_ms is None:
            continue
        traced = [(links[k].a, links[k].b) for k in crossed[::2]]  # some traced, some not
        terms = terms_on(problem.cost, traced, app, plan[app])
        ref = tuple(links[k].mbps for k in crossed[::2])
        for _ in range(30):
            now = {key: m * rng.uniform(0.3, 3.0) for key, m in zip(traced, ref, strict=True)}
            moved = solver.refigured(problem, now)
            worst = solver.evaluate(moved.cost, {app: plan[app]}).records[app].cost.worst_ms
            fixed, parts = terms
            summed = fixed + sum(
                k / min([base, *(now[e] for e in keys)]) for k, base, keys in parts
            )
            assert summed == pytest.approx(worst, rel=1e-12)
            # An SLO near the worst case, so that the plain bound is often unsure.
            slo = worst * rng.uniform(0.8, 1.25)
            v = SimpleNamespace(
                app_ref={app: (rec.cost.worst_ms, slo, ref)}, terms={}, records=ev.records
            )
            figures = tuple(now.values())
            verdict = Verdicts._summed(v, app, now, lambda _, t=terms: t)  # type: ignore[arg-type]
            assert verdict in (None, worst > slo)
            checked += verdict is not None
            more += Verdicts._bound(v, app, figures) is None  # type: ignore[arg-type]
    assert checked > 100 and more > 20


class MigrationChecked(Simulation):
    """Each change's migrated MB, kept by the two placements of each app moved, is what
    the whole plan's migration term counts afresh."""

    checked = kept = 0

    def _migrated_apps(self, moved: dict[str, solver.Placement]) -> float:
        cm, memo = self._mb_moved
        if cm is self._problem.cost:
            self.kept += sum((self.placements.get(a), p) in memo for a, p in moved.items())
        old = dict(self.placements)
        got = super()._migrated_apps(moved)
        # `_migrated`'s terms on the same compiled scenario (it compiles the one of now).
        now = self._problem
        priced = solver.Problem(now.scenario, now.cost, previous=old)
        new = {
            a: p for a, p in moved.items()
            if a in now.cost.apps and p.hosts() <= now.cost.devices.keys() and old.get(a) != p
        }  # fmt: skip
        ev = solver.evaluate(
            priced.cost, {a: p for a, p in new.items() if a in old}, require_all=False,
            migration=priced.migration,
        )  # fmt: skip
        assert got == sum(ev.migration_mb.values())
        self.checked += 1
        return got


def test_the_mb_a_change_migrates_is_the_whole_plans_term() -> None:
    inputs = generated(1800)
    sim = MigrationChecked(inputs, "neurosurgeon", make(context(inputs, "neurosurgeon")))
    run = sim.run()
    assert sim.checked > 30 and sim.kept > 0 and run.totals.migrated_mb > 0
