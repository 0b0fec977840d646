"""The hysteresis rule, and that it never flaps between two plans."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import solver
from orchestrator import hysteresis
from orchestrator.hysteresis import Mend, decide, pack_mend, set_aside_moves

ROOT = Path(__file__).resolve().parents[2]


def test_first_plan_is_applied() -> None:
    assert decide(None, [], 10.0, True).apply


def test_broken_plan_in_force_is_replaced_even_by_a_worse_one() -> None:
    d = decide(5.0, ["device cam-1: battery"], 9.0, True)
    assert d.apply and "breaks" in d.reason


def test_small_improvement_is_not_applied() -> None:
    d = decide(10.0, [], 9.7, True)
    assert not d.apply and "margin" in d.reason


def test_large_improvement_is_applied() -> None:
    assert decide(10.0, [], 9.0, True).apply


def test_infeasible_candidate_is_never_applied() -> None:
    assert not decide(10.0, [], 1.0, False).apply
    assert not decide(10.0, ["link"], None, False).apply


@settings(max_examples=300, derandomize=True)
@given(
    a=st.floats(0, 1e6),
    b=st.floats(0, 1e6),
    move_ab=st.floats(0, 1e3),
    move_ba=st.floats(0, 1e3),
    margin=st.floats(0.001, 0.5),
)
def test_never_flaps(a: float, b: float, move_ab: float, move_ba: float, margin: float) -> None:
    """Under the same conditions, A -> B and B -> A are never both applied."""
    there = decide(a, [], b + move_ab, True, margin).apply
    back = decide(b, [], a + move_ba, True, margin).apply
    assert not (there and back)


BROKEN_PACK = ["device cam-2: battery: 0.3600 W exceeds the 0.3109 W its battery pays"]


@pytest.fixture
def mends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short mends judged on their objective (a research knob, off by default)."""
    monkeypatch.setattr(hysteresis, "MEND_MIN_S", 600.0)


def test_short_mends_are_off_by_default_constraints_first() -> None:
    d = decide(2.5, BROKEN_PACK, 4.66, True, mend=Mend(0.0, "cam-2"))
    assert d.apply and d.reason.startswith("the plan in force breaks a constraint:")


@pytest.mark.usefixtures("mends")
def test_a_costly_candidate_that_mends_packs_for_minutes_is_judged_on_its_objective() -> None:
    d = decide(2.5, BROKEN_PACK, 4.66, True, mend=Mend(112.0, "cam-2"))
    assert not d.apply
    assert "keeps cam-2's pack for 112 s only (< 600 s) at 86.4% more objective" in d.reason
    assert d.reason.endswith("keeping the plan in force")


@pytest.mark.usefixtures("mends")
def test_a_mend_that_lasts_or_costs_nothing_more_goes_in_force_as_before() -> None:
    for mend in (Mend(hysteresis.MEND_MIN_S, "cam-2"), None):
        assert decide(2.5, BROKEN_PACK, 4.66, True, mend=mend).apply
    cheap = decide(2.5, BROKEN_PACK, 2.6, True, mend=Mend(1.0, "cam-2"))
    assert cheap.apply and cheap.reason.startswith("the plan in force breaks a constraint:")


@pytest.mark.usefixtures("mends")
def test_without_the_cost_condition_a_short_mend_is_judged_on_its_objective(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hysteresis, "MEND_ONLY_WHEN_COSTLIER", False)
    assert not decide(2.5, BROKEN_PACK, 2.6, True, mend=Mend(1.0, "cam-2")).apply
    better = decide(2.5, BROKEN_PACK, 2.0, True, mend=Mend(1.0, "cam-2"))
    assert better.apply and "judged on its objective" in better.reason


def _at_level(scenario: dict[str, Any], device: str, level_pct: float) -> solver.Problem:
    scn = copy.deepcopy(scenario)
    for d in scn["devices"]:
        if d["id"] == device:
            d["battery"]["level_pct"] = level_pct
    return solver.Problem(solver.parse_scenario(scn))


def test_a_mend_lasts_while_the_pack_drained_at_the_candidates_draw_still_pays_for_it() -> None:
    """cam-2 (50 Wh, min 20%, idle 2.5 W, 8 h horizon) at a level where its budget is
    10 mW above what the plan draws from it: kept 0.01 W * 8 h / (2.5 W + draw). Drained
    at that draw for 1% less than that, its budget (the evaluator's own) still pays; for
    1% more, it no longer does."""
    scenario = yaml.safe_load((ROOT / "examples" / "factory-line.yaml").read_text())
    problem = _at_level(scenario, "cam-2", 90.0)
    plan = solver.solve(problem, solver="heuristic")
    assert plan.evaluation is not None
    power = plan.evaluation.power_w["cam-2"]
    assert power > 0.0
    draw = 2.5 + power
    level = 20.0 + (power + 0.01 + 2.5) * 8.0 / 50.0 * 100.0
    mend = pack_mend(_at_level(scenario, "cam-2", level), ["cam-2"], plan.evaluation)
    assert mend is not None and mend.device == "cam-2"
    assert mend.s == pytest.approx(0.01 * 8.0 * 3600.0 / draw, rel=1e-9)
    for factor, pays in ((0.99, True), (1.01, False)):
        drained = level - draw * mend.s * factor / 3600.0 / 50.0 * 100.0
        limit = _at_level(scenario, "cam-2", drained).cost.battery_limit_w("cam-2")
        assert limit is not None and (limit >= power) is pays
    # A pack the candidate draws nothing from, and a mains device, are kept whatever.
    idle = {d: (0.0 if d == "cam-2" else w) for d, w in plan.evaluation.power_w.items()}
    nothing = copy.copy(plan.evaluation)
    nothing.power_w = idle
    assert pack_mend(problem, ["cam-2"], nothing) is None
    assert pack_mend(problem, ["edge-a"], plan.evaluation) is None


def test_an_app_just_set_aside_moves_only_when_the_whole_plan_gains_the_margin() -> None:
    """Rule 3 weighs the whole plan, the apps just set aside included where each plan
    runs them: 10 + 4 against 10 + 1 is 21.4% less; against 10 + 3.4, 4.3% (< 5%)."""
    moved = set_aside_moves(10.0, 4.0, 10.0, 1.0, 0.05)
    assert moved is not None and moved.apply
    assert moved.reason.format("weld-2") == (
        "set aside now, weld-2 runs degraded where the whole plan costs 21.4% less (> 5%) "
        "than where it ran within its limits"
    )
    assert set_aside_moves(10.0, 4.0, 10.0, 3.4, 0.05) is None
    # The candidate's own objective counts: one that costs more elsewhere keeps it there.
    assert set_aside_moves(10.0, 4.0, 13.5, 0.0, 0.05) is None
