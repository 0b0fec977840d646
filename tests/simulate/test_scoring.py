"""The incremental verdicts (simulate/scoring.py) against the evaluator run on the whole
plan at every step: the same figures, step for step, on the example fleet with two real
traces on its links, packs draining fast enough to move their constraints, and a
failure (a device lost and back)."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest

from simulate.engine import PolicyRun, Sample, Simulation
from simulate.inputs import load_scenario_dict, prepare
from simulate.registry import known, make
from simulate.run import context

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
WALKING = TRACES / "5gophers" / "All-Carriers_03-User-Mobility_walking-trace.csv"


def run(name: str, steps: int, every_step: bool) -> tuple[PolicyRun, int]:
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
    inputs = prepare(
        scn, "factory-line", [name], known(), hours=steps / 3600,
        traces=[
            f"edge-a~cloud-gpu={TRACES / 'hsdpa-norway' / 'norway_bus_1'}",
            f"cam-6~edge-b={WALKING}",
        ],
        batteries=["cam-5=mains:0.04:20W"], failures=["edge-b@0.02:0.01"],
    )  # fmt: skip
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
