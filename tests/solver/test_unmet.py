"""`solver.unmet`: an app no placement of which meets its SLO is known again without its
candidates while no link of its routes is faster, with the reason a fresh parse gives."""

from __future__ import annotations

import pytest

from solver import Code, Problem
from solver.incremental import Change, apply_change
from solver.partial import alone
from solver.scenario import parse_scenario
from tests.solver.test_heuristic_battery import _fleet
from tests.solver.test_ownpack import _states_made

APPS = ["g000-vision", "g000-vision-2"]


def _uplinks(problem: Problem) -> list[tuple[str, str, float]]:
    return [(lk.a, lk.b, lk.mbps) for lk in problem.scenario.links if "g000-cam-1" in (lk.a, lk.b)]


def test_an_unmet_slo_is_known_again_on_links_no_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _fleet(1, set())
    raw["apps"][0]["slo_ms"] = 5  # squeezenet's input alone takes longer to send
    problem = Problem(parse_scenario(raw))
    got = alone(problem, APPS)
    assert list(got) == ["g000-vision"] and got["g000-vision"].code == Code.SLO
    made = _states_made(monkeypatch)
    # The store is one for the problems derived from `problem`: once made again at twice
    # the figure, the verdict holds at any figure up to that.
    for factor, remade in ((1.0, False), (0.5, False), (2.0, True), (1.5, False)):
        made.clear()
        moved = {(a, b): {"mbps": mbps * factor} for a, b, mbps in _uplinks(problem)}
        derived = apply_change(problem, Change(links=moved))
        mine = alone(derived, APPS)
        assert made == ([APPS] if remade else [APPS[1:]]), factor
        scn = derived.scenario.model_dump(mode="json", exclude_none=True)
        assert mine == alone(Problem(parse_scenario(scn)), APPS)  # a fresh parse agrees
        assert list(mine) == ["g000-vision"] and mine["g000-vision"] == got["g000-vision"]


def test_unmet_verdicts_go_with_the_fleets_shape_and_prices() -> None:
    raw = _fleet(1, set())
    raw["apps"][0]["slo_ms"] = 5
    problem = Problem(parse_scenario(raw))
    alone(problem, APPS)
    assert "slo_unmet" in problem.derived
    drained = Change(
        devices={"g000-cam-1": {"battery": {**raw["devices"][0]["battery"], "level_pct": 50}}}
    )
    assert apply_change(problem, drained).derived["slo_unmet"] is problem.derived["slo_unmet"]
    slower_cpu = Change(devices={"g000-edge": {"gflops": 1.0}})
    assert "slo_unmet" not in apply_change(problem, slower_cpu).derived
    a, b, _ = _uplinks(problem)[0]
    assert "slo_unmet" not in apply_change(problem, Change(links={(a, b): {"rtt_ms": 1}})).derived
