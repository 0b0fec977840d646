"""A plan's floors: at or above them every app keeps its SLO and every link its limit; and
what a fall costs it bounds what its objective rises by."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import solver
from orchestrator.floors import plan_floors
from orchestrator.replacement import layers_of, placements_of
from orchestrator.triggers import LinkCosts, link_floors, link_name
from solver.generate import generate


def _solved() -> tuple[dict[str, Any], solver.PlanDoc]:
    scenario = generate(7, devices=40, apps=15, blocks=6)
    plan = solver.solve(solver.parse_scenario(scenario), solver.SolveOptions(time_limit_s=10))
    assert plan.status != solver.Status.INFEASIBLE
    return scenario, plan.doc


def _uses(plan: solver.PlanDoc) -> list[dict[str, Any]]:
    return [{"a": u.a, "b": u.b, "utilization": u.utilization} for u in plan.links]


def _floors(
    scenario: dict[str, Any], plan: solver.PlanDoc
) -> tuple[dict[str, float], LinkCosts | None]:
    return plan_floors(scenario, plan.apps, _uses(plan))


def _judged(
    scenario: dict[str, Any], plan: solver.PlanDoc, mbps: dict[str, float]
) -> solver.Evaluation:
    """The plan evaluated with the links of `mbps` (by name) at those figures."""
    moved = copy.deepcopy(scenario)
    for lk in moved["links"]:
        name = link_name(lk["a"], lk["b"])
        if name in mbps:
            lk["mbps"] = mbps[name]
    problem = solver.Problem(solver.parse_scenario(moved))
    return solver.evaluate(problem.cost, placements_of(layers_of(moved), plan.apps))


def _broken(ev: solver.Evaluation) -> list[solver.Reason]:
    return [r for r in ev.found if r.code in (solver.Code.SLO, solver.Code.BANDWIDTH)]


def test_at_the_floors_nothing_a_bandwidth_reads_breaks_and_under_them_it_may() -> None:
    scenario, plan = _solved()
    floors, costs = _floors(scenario, plan)
    own = link_floors(_uses(plan), scenario)
    # The links the plan sends over, each at least at its own limit's floor; some higher,
    # for an app's SLO across it.
    assert floors.keys() == own.keys() and floors
    assert all(floors[n] >= own[n] for n in own)
    assert any(floors[n] > own[n] * 1.01 for n in own)
    assert _broken(_judged(scenario, plan, {})) == []
    # Every link at its floor at once (a millionth above, for the printout's rounding).
    at_floors = {n: f * (1 + 1e-6) for n, f in floors.items()}
    assert _broken(_judged(scenario, plan, at_floors)) == []
    # Not vacuous: a fall well under the floors breaks something.
    assert _broken(_judged(scenario, plan, {n: f * 0.3 for n, f in floors.items()})) != []
    assert costs is not None and costs.solved.keys() == floors.keys()


def test_what_a_fall_costs_bounds_the_objectives_rise() -> None:
    scenario, plan = _solved()
    assert scenario["objective"]["latency"] > 0  # the generated fleet prices latency
    _, costs = _floors(scenario, plan)
    assert costs is not None
    before = _judged(scenario, plan, {}).objective
    assert costs.objective == pytest.approx(before, rel=1e-12)
    for share in (0.9, 0.6, 0.3):
        fell = {n: m0 * share for n, (m0, _) in costs.solved.items()}
        rose = _judged(scenario, plan, fell).objective - before
        bound = sum(costs.cost(n, m) for n, m in fell.items())
        assert 0 < rose <= bound * (1 + 1e-9)
        assert rose >= bound / 4  # near it: a transfer's route mostly has one slow link
    # No weight on latency: a fall costs nothing.
    free = copy.deepcopy(scenario)
    free["objective"]["latency"] = 0.0
    _, costs = _floors(free, plan)
    assert costs is not None and all(rise == 0.0 for _, rise in costs.solved.values())


def test_a_plan_its_scenario_cannot_read_has_its_links_own_floors_and_no_costs() -> None:
    scenario, plan = _solved()
    gone = copy.deepcopy(scenario)
    used = plan.apps[0].segments[0].device if plan.apps[0].segments else None
    assert used is not None
    gone["devices"] = [d for d in gone["devices"] if d["id"] != used]
    gone["links"] = [lk for lk in gone["links"] if used not in (lk["a"], lk["b"])]
    floors, costs = _floors(gone, plan)
    assert costs is None and floors == link_floors(_uses(plan), gone)
