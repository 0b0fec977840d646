"""Inputs drawn at random from what `continuum simulate` accepts (the example fleet or a
generated one, real traces of every format on random links, devices failing and coming
back, charging profiles, coarse steps), each run by a built-in policy: the run finishes,
its incremental verdicts equal the evaluator on the whole plan step for step, and what
broke adds up to its `violation_s`. A device lost with no link traced once crashed
`neurosurgeon` (`solver.splitroutes.Routes.taken`); nothing drawn here should."""

from __future__ import annotations

import random
from dataclasses import astuple
from typing import Any

import pytest

from simulate.engine import PolicyRun, Simulation
from simulate.inputs import Inputs, load_scenario_dict, prepare
from simulate.registry import known, make
from simulate.run import context
from solver.generate import generate
from tests.simulate.fleets import ROOT, TRACES
from tests.simulate.test_scoring import figures

FILES = sorted(
    p
    for kind in ("5gophers", "fcc", "hsdpa-norway", "oboe")
    for p in (TRACES / kind).iterdir()
    if p.is_file() and not p.name.startswith(("README", "LICENSE"))
)
POLICIES = ["continuum", "static", "neurosurgeon", "all-cloud", "all-device", "heuristic"]
PROFILES = ["solar:0-24:5W", "solar:6-18:2W", "mains:0", "mains:0.02:20W"]


def drawn(seed: int) -> tuple[Inputs, str, dict[str, Any]]:
    rng = random.Random(seed)
    if seed % 2:
        scn: dict[str, Any] = generate(seed, devices=16, apps=6)
    else:
        scn = load_scenario_dict(ROOT / "examples" / "factory-line.yaml")
    devices = [d["id"] for d in scn["devices"]]
    packs = [d["id"] for d in scn["devices"] if d.get("battery")]
    links = [(lk["a"], lk["b"]) for lk in scn["links"]]
    hours = rng.choice([0.02, 0.05, 0.1])
    drawn_in = {
        "traces": [f"{a}~{b}={rng.choice(FILES)}" for a, b in rng.sample(links, rng.randrange(3))],
        "failures": [
            f"{d}@{rng.uniform(0, hours):.4f}"
            + (f":{rng.uniform(0.002, hours):.4f}" if rng.random() < 0.6 else "")
            for d in rng.sample(devices, rng.randrange(3))
        ],
        "batteries": [f"{d}={rng.choice(PROFILES)}" for d in rng.sample(packs, rng.randrange(3))],
        "step_s": rng.choice([1.0, 1.0, 5.0]),
        "seed": rng.randrange(3),
    }
    policy = POLICIES[seed % len(POLICIES)]
    inputs = prepare(scn, "drawn", [policy], known(), hours, **drawn_in)
    return inputs, policy, drawn_in


def _run(inputs: Inputs, policy: str, every_step: bool) -> PolicyRun:
    sim = Simulation(inputs, policy, make(context(inputs, policy)))
    sim.evaluate_every_step = every_step
    return sim.run()


@pytest.mark.parametrize("seed", range(48))
def test_drawn_inputs_run_and_score_as_the_whole_evaluation(seed: int) -> None:
    inputs, policy, what = drawn(seed)
    fast = _run(inputs, policy, every_step=False)
    whole = _run(inputs, policy, every_step=True)
    assert [figures(s) for s in fast.samples] == [figures(s) for s in whole.samples], what
    assert astuple(fast.totals)[:-1] == astuple(whole.totals)[:-1], what  # solve_s aside
    assert sum(b.seconds for b in fast.broken.values()) == pytest.approx(
        fast.totals.violation_s, abs=1e-6
    ), what
    assert fast.samples and fast.samples[-1].t_s == pytest.approx(inputs.steps * inputs.step_s)
