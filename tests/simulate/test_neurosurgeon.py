"""`neurosurgeon` in the simulator (simulate/neurosurgeon.py: cached per app, bounded)
puts in force, step by step, the plan of the solver's reference (every candidate scored),
on a generated fleet with real traces on camera uplinks and a device lost and back (an edge,
whose loss moves every app's routes; a camera, across which the cached choices are carried).
"""

from __future__ import annotations

import math
from dataclasses import astuple
from pathlib import Path
from typing import Any

import pytest

import solver
from orchestrator.replacement import placements_of
from simulate.engine import PolicyRun, Simulation
from simulate.inputs import Inputs, load_scenario_dict, prepare
from simulate.neurosurgeon import NeurosurgeonPolicy, _App
from simulate.policy import Moment, PlanChange, SolverPolicy
from simulate.registry import known
from simulate.run import context
from solver.baselines import solve_neurosurgeon_reference
from solver.generate import generate
from solver.splitroutes import figure_vector
from solver.splits import AppSplits, Key
from tests.simulate.fleets import camera_traces, first_edge


class Reference(SolverPolicy):
    """The baseline re-solved by scoring every candidate, at the steps any baseline is."""

    solves = 0

    def decide(self, now: Moment) -> solver.PlanDoc | None:
        moved = now.changed and (now.lost or now.joined or now.bandwidth)
        if now.in_force is not None and not moved:
            return None
        self.solves += 1
        return solve_neurosurgeon_reference(now.problem, self.options).doc


class Recorded:
    """A policy whose plans in force are written down, step by step; at every step the
    plan in force it is shown (`now.in_force`, written on the scenario of now when read
    after a `PlanChange`) is the one written down, as far as it can run now."""

    def __init__(self, inner: Any, layers: dict[str, list[str]]) -> None:
        self.inner, self.layers = inner, layers
        self.in_force: list[dict[str, solver.Placement]] = []

    def decide(self, now: Moment) -> solver.PlanDoc | PlanChange | None:
        if now.has_plan:
            assert now.in_force is not None
            shown = placements_of(self.layers, now.in_force.apps)
            assert _runs(now, shown) == _runs(now, self.in_force[-1])
        doc = self.inner.decide(now)
        if isinstance(doc, PlanChange):
            self.in_force.append({**self.in_force[-1], **doc.placements})
        elif doc is not None:
            self.in_force.append(placements_of(self.layers, doc.apps))
        else:
            self.in_force.append(self.in_force[-1])
        return doc


def _runs(now: Moment, plan: dict[str, solver.Placement]) -> dict[str, solver.Placement]:
    cm = now.problem.cost
    return {a: p for a, p in plan.items() if a in cm.apps and p.hosts() <= cm.devices.keys()}


def _inputs(tmp: Path) -> Inputs:
    scn = generate(11, devices=24, apps=12, overheads=True)
    traces = camera_traces(scn)
    edge = first_edge(scn)
    return prepare(
        scn, "generated-24", ["neurosurgeon"], known(), hours=100 / 3600, traces=traces,
        failures=[f"{edge}@0.01:0.01"],
    )  # fmt: skip


def _run(inputs: Inputs, policy: Any) -> tuple[PolicyRun, Recorded]:
    layers = {m["id"]: [ly["name"] for ly in m["layers"]] for m in inputs.scenario["models"]}
    recorded = Recorded(policy, layers)
    return Simulation(inputs, "neurosurgeon", recorded).run(), recorded


def _same_as_reference(inputs: Inputs) -> tuple[NeurosurgeonPolicy, Recorded]:
    """neurosurgeon and the reference on `inputs`: the same plans in force, step by step,
    and the same totals but `solve_s` (a wall time)."""
    mine = NeurosurgeonPolicy(context(inputs, "neurosurgeon"))
    fast, fast_rec = _run(inputs, mine)
    slow, slow_rec = _run(inputs, Reference(context(inputs, "neurosurgeon")))
    assert fast_rec.in_force == slow_rec.in_force
    assert astuple(fast.totals)[:-1] == astuple(slow.totals)[:-1]
    return mine, fast_rec


def test_step_by_step_the_reference_plan(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path)
    mine = NeurosurgeonPolicy(context(inputs, "neurosurgeon"))
    fast, fast_rec = _run(inputs, mine)
    reference = Reference(context(inputs, "neurosurgeon"))
    slow, slow_rec = _run(inputs, reference)
    assert fast_rec.in_force == slow_rec.in_force
    assert astuple(fast.totals)[:-1] == astuple(slow.totals)[:-1]  # solve_s, a wall time
    # The run moved the choice; most apps' choices came from the cache.
    assert fast.totals.replacements > 0
    assert mine.chose < len(inputs.scenario["apps"]) * reference.solves / 2


def test_choices_carried_across_a_camera_lost_and_back_are_the_reference_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scn = generate(11, devices=24, apps=12, overheads=True)
    sources = {a["source"] for a in scn["apps"]}
    camera = next(
        d["id"] for d in scn["devices"] if d["tier"] == "device" and d["id"] not in sources
    )
    inputs = prepare(
        scn, "generated-24", ["neurosurgeon"], known(), hours=100 / 3600,
        traces=camera_traces(scn), failures=[f"{camera}@0.01:0.01"],
    )  # fmt: skip
    mine, _ = _same_as_reference(inputs)
    # Both shape changes carried choices over, and the run chose fewer apps afresh than one
    # that drops every cache at each.
    assert mine.carried > 0
    monkeypatch.setattr(_App, "carry", lambda *args: 0)
    dropping = NeurosurgeonPolicy(context(inputs, "neurosurgeon"))
    _run(inputs, dropping)
    assert mine.chose < dropping.chose


def test_a_device_lost_with_nothing_traced_is_the_reference_s() -> None:
    """The example fleet with no trace: the layouts taken across cam-6's loss have no
    traced link to renumber (this crashed `continuum simulate --fail` once)."""
    scn = load_scenario_dict(Path(__file__).resolve().parents[2] / "examples" / "factory-line.yaml")
    inputs = prepare(
        scn, "factory-line", ["neurosurgeon"], known(), hours=60 / 3600,
        failures=["cam-6@0.005:0.005"],
    )  # fmt: skip
    _, recorded = _same_as_reference(inputs)
    served = ["intrusion-6" in p for p in recorded.in_force]  # cam-6's app: lost, and back
    assert served[0] and not all(served) and served[-1]


_BEST = figure_vector(())  # no traced link: every figure is the scenario's


def _laid_out(problem: solver.Problem, app_id: str) -> _App:
    app = next(a for a in problem.scenario.apps if a.id == app_id)
    return _App(AppSplits(problem, app, {}), _BEST)


def _carried(old: _App, new: _App, choice: solver.Placement, key: Key) -> int:
    old.cache = {(): {(): (choice, key)}}
    return new.carry(old, [], [])


def test_a_choice_is_carried_only_where_the_shape_change_cannot_move_it() -> None:
    full = solver.Problem(solver.parse_scenario(generate(11, devices=24, apps=12)))
    app = full.scenario.apps[0]
    sources = {a.source for a in full.scenario.apps}
    camera = next(d.id for d in full.scenario.devices if d.tier == "device" and d.id not in sources)
    shrunk = solver.apply_change(full, solver.Change(lost_devices=frozenset({camera})))
    splits = _laid_out(full, app.id).splits
    j = splits.others.index(camera)  # every camera is a candidate host of every app
    mine = [i for i, h in enumerate(splits.hosts().tolist()) if h == j]
    on_camera, alone = splits.candidate(mine[0]), splits.candidate(0)

    # The camera lost: a choice of a candidate on it is dropped, any other carried.
    assert _carried(_laid_out(full, app.id), _laid_out(shrunk, app.id), on_camera, (0, 1.0)) == 0
    after = _laid_out(shrunk, app.id)
    assert _carried(_laid_out(full, app.id), after, alone, (0, 1.0)) == 1
    assert after.cached([]) == alone

    # The camera back: a choice is carried only when every candidate on the camera is
    # bounded above its key; a tie could win (the camera comes first in the order).
    back = _laid_out(full, app.id)
    least = min(zip(back.lower.broken[mine].tolist(), back.lower.value[mine].tolist(), strict=True))
    assert _carried(_laid_out(shrunk, app.id), _laid_out(full, app.id), alone, least) == 0
    below = (least[0], math.nextafter(least[1], -math.inf))
    assert _carried(_laid_out(shrunk, app.id), back, alone, below) == 1
    assert back.cached([]) == alone
