"""`neurosurgeon` in the simulator (simulate/neurosurgeon.py: cached per app, bounded)
puts in force, step by step, the plan of the solver's reference (every candidate scored),
on a generated fleet with real traces on camera uplinks and a device lost and back."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path
from typing import Any

import solver
from orchestrator.replacement import placements_of
from simulate.engine import PolicyRun, Simulation
from simulate.inputs import Inputs, prepare
from simulate.neurosurgeon import NeurosurgeonPolicy
from simulate.policy import Moment, PlanChange, SolverPolicy
from simulate.registry import known
from simulate.run import context
from solver.baselines import solve_neurosurgeon_reference
from solver.generate import generate
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
            shown = placements_of(self.layers, now.in_force)
            assert _runs(now, shown) == _runs(now, self.in_force[-1])
        doc = self.inner.decide(now)
        if isinstance(doc, PlanChange):
            self.in_force.append({**self.in_force[-1], **doc.placements})
        elif doc is not None:
            self.in_force.append(placements_of(self.layers, doc))
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
