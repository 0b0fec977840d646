"""What broke (simulate/ledger.py): the constraints the incremental verdicts hold broken
are, step by step, those the evaluator lists on the whole plan; their seconds add up to
`violation_s`; and the report and broken.csv name them."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import ClassVar

import pytest

import simulate.engine as engine
import solver
from simulate.engine import PolicyRun, Simulation
from simulate.inputs import Inputs
from simulate.ledger import Broken, Key, Ledger, broken_in, broken_now
from simulate.outputs import broken_text
from simulate.registry import make
from simulate.report import report_html
from simulate.run import context
from simulate.scoring import Verdicts
from tests.simulate.test_scoring import example, generated


class _Seen(Ledger):
    """A ledger that keeps what it was shown at each step."""

    runs: ClassVar[list[_Seen]] = []

    def __init__(self, dt: float) -> None:
        super().__init__(dt)
        self.seen: list[Counter[Key]] = []
        _Seen.runs.append(self)

    def step(self, k: int, v: Verdicts | None) -> None:
        super().step(k, v)
        self.seen.append(Counter() if v is None else broken_now(v))


class _Whole(Simulation):
    """Every step evaluated whole; what the evaluator lists broken, step by step."""

    def __init__(self, inputs: Inputs, name: str) -> None:
        super().__init__(inputs, name, make(context(inputs, name)))
        self.evaluate_every_step = True
        self.listed: list[Counter[Key]] = []

    def _evaluate(self) -> None:
        super()._evaluate()
        assert self.evaluation is not None
        self.listed.append(broken_in(self.evaluation))


def _expected(seen: list[Counter[Key]], dt: float) -> dict[Key, Broken]:
    """Each constraint's figures, read off the steps one by one."""
    out: dict[Key, Broken] = {}
    before: Counter[Key] = Counter()
    for k, now in enumerate(seen):
        for key, n in now.items():
            b = out.setdefault(key, Broken(0.0, 0, k * dt, 0.0))
            b.seconds += n * dt
            b.spells += key not in before
            b.last_s = (k + 1) * dt
        before = now
    return out


def _check(fast: PolicyRun, seen: list[Counter[Key]], whole: _Whole, dt: float) -> None:
    assert len(seen) == len(whole.listed) == len(fast.samples)  # a sample at every step
    # What the ledger reads is what the score counts: the constraints broken at each step.
    assert [sum(c.values()) for c in seen] == [s.violations for s in fast.samples]
    assert seen == whole.listed  # the verdicts' broken constraints are the evaluator's
    expected = _expected(seen, dt)
    assert fast.broken.keys() == expected.keys()
    for key, b in fast.broken.items():
        e = expected[key]
        assert (b.spells, b.first_s, b.last_s) == (e.spells, e.first_s, e.last_s), key
        assert math.isclose(b.seconds, e.seconds), key
    total = sum(b.seconds for b in fast.broken.values())
    assert math.isclose(total, fast.totals.violation_s, rel_tol=1e-9)
    seconds = [b.seconds for b in fast.broken.values()]
    assert seconds == sorted(seconds, reverse=True)  # most seconds first


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[_Seen]:
    _Seen.runs = []
    monkeypatch.setattr(engine, "Ledger", _Seen)
    return _Seen.runs


def test_what_broke_is_what_the_evaluator_lists_step_by_step(seen: list[_Seen]) -> None:
    """The example fleet with real traces, packs drained across their limits and an edge
    box lost and back (tests/simulate/test_scoring.py), under `static`."""
    inputs = example("static", 240)
    fast = Simulation(inputs, "static", make(context(inputs, "static"))).run()
    ledger = seen[0]  # the fast run's (the whole run's comes next)
    whole = _Whole(inputs, "static")
    whole.run()
    _check(fast, ledger.seen, whole, 1.0)
    families = {code for code, _ in fast.broken}
    # Links, SLOs and packs all broke on the way, and some constraint mended and broke again.
    assert {"bandwidth", "slo", "battery"} <= families
    assert any(b.spells > 1 for b in fast.broken.values())


def test_what_broke_follows_apps_moved_and_a_device_lost(seen: list[_Seen]) -> None:
    """Neurosurgeon moves a few apps at most steps (scored by what they touch) on a
    generated fleet whose edge box is lost and comes back."""
    inputs = generated(200)
    fast = Simulation(inputs, "neurosurgeon", make(context(inputs, "neurosurgeon"))).run()
    ledger = seen[0]  # the fast run's (the whole run's comes next)
    whole = _Whole(inputs, "neurosurgeon")
    whole.run()
    _check(fast, ledger.seen, whole, 1.0)
    assert fast.broken and len({sum(c.values()) for c in ledger.seen}) > 1


def test_an_app_not_served_is_named() -> None:
    """A plan that leaves an app out breaks the contract's "every app placed": the ledger
    names that app, as the evaluator lists it."""
    inputs = generated(5)
    sim = Simulation(inputs, "static", make(context(inputs, "static")))
    out = sim.run()
    assert sim.verdicts is not None and sim.evaluation is not None
    left = next(iter(sim.placements))
    sim.placements = {a: p for a, p in sim.placements.items() if a != left}
    sim._evaluate()
    assert ("structure", left) in broken_now(sim.verdicts)
    assert broken_now(sim.verdicts) == broken_in(sim.evaluation)
    assert out.totals.violation_s == sum(b.seconds for b in out.broken.values())


@pytest.mark.parametrize("device", ["dev-2", "dev-4"])
def test_a_move_scored_by_its_apps_is_read_again(device: str) -> None:
    """An app moved whole onto a camera (`_score_moved`, the path of a `PlanChange`)
    breaks its SLO, the camera's compute (and on dev-4 its pack) and the links its input
    crosses: the ledger reads what moved at the next step, and counts from there."""
    inputs = generated(5)
    sim = Simulation(inputs, "static", make(context(inputs, "static")))
    sim.run()
    v = sim.verdicts
    assert v is not None
    ledger = Ledger(1.0)
    ledger.step(0, v)
    before = broken_now(v)
    app, p = [(a, p) for a, p in sim.placements.items() if p.blocks][3]
    assert p.blocks is not None
    moved = replace(p, blocks=(device,) * len(p.blocks))
    assert sim._score_moved({app: moved})
    sim.placements[app] = moved
    ledger.step(1, v)
    now = broken_now(v)
    problem = sim.problem()
    ev = solver.evaluate(problem.cost, sim._valid(sim.placements), cache=problem.app_costs)
    assert now == broken_in(ev)
    new = now - before
    assert {"slo", "compute", "bandwidth"} <= {code for code, _ in new}
    assert (device == "dev-4") == (("battery", device) in new)
    out = ledger.close(2)
    assert all(out[key] == Broken(1.0, 1, 1.0, 2.0) for key in new)
    assert all(out[key] == Broken(2.0, 1, 0.0, 2.0) for key in before)
    assert out.keys() == new.keys() | before.keys()


def test_broken_csv_and_the_report_name_the_constraint() -> None:
    run_ = PolicyRun("p", engine.Totals(violation_s=30.0))
    run_.broken = {
        ("battery", "cam-5"): Broken(20.0, 1, 290.0, 3600.0),
        ("bandwidth", "cam-6~edge-b"): Broken(10.0, 2, 0.0, 75.0),
    }
    quiet = PolicyRun("q", engine.Totals())
    text = broken_text({"p": run_, "q": quiet})
    assert text.splitlines() == [
        "policy,constraint,subject,seconds,spells,first_s,last_s",
        "p,battery,cam-5,20.0,1,290.0,3600.0",
        "p,bandwidth,cam-6~edge-b,10.0,2,0.0,75.0",
    ]
    page = report_html("t", {"p": run_, "q": quiet}, {})
    assert "<h2>What broke</h2>" in page
    assert "<td>battery</td><td class='t'>cam-5</td><td>20</td><td>66.7%</td><td>1</td>" in page
    assert "<td>0:04:50</td><td>1:00:00</td>" in page
    nothing = report_html("t", {"q": quiet}, {})
    assert "No policy broke any constraint." in nothing
