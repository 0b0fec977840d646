"""An app's worst-case latency at unlimited bandwidth: what no link's Mbit/s changes."""

from __future__ import annotations

import copy

import pytest

import solver
from solver.generate import generate


def test_the_fixed_part_of_the_latency_is_the_latency_on_links_a_billion_times_faster() -> None:
    scenario = generate(3, devices=30, apps=12, blocks=6)
    problem = solver.Problem(solver.parse_scenario(scenario))
    plan = solver.solve(problem.scenario, solver.SolveOptions(time_limit_s=10))
    assert plan.status != solver.Status.INFEASIBLE
    fixed = solver.fixed_worst_ms(problem.cost, plan.placements)
    fast = copy.deepcopy(scenario)
    for lk in fast["links"]:
        lk["mbps"] *= 1e9
    on_fast = solver.evaluate(solver.Problem(solver.parse_scenario(fast)).cost, plan.placements)
    worst = solver.evaluate(problem.cost, plan.placements)
    sent = 0
    for app, ms in fixed.items():
        assert ms == pytest.approx(on_fast.records[app].cost.worst_ms, rel=1e-6, abs=1e-9)
        assert ms <= worst.records[app].cost.worst_ms
        sent += ms < worst.records[app].cost.worst_ms * (1 - 1e-6)
    assert sent  # some app's latency reads bandwidth: the two sides differ there
