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


def test_the_least_mbps_within_is_the_boundary_of_link_within_to_the_last_bit() -> None:
    import math
    import random

    from solver.evaluate import least_within_mbps, link_within

    rng = random.Random(3)
    cases = [(0.0, 0.8), (0.0, -0.1), (5.0, -0.1), (5.0, 0.0), (1e-300, 0.5)]
    cases += [
        (rng.uniform(0, 100) ** rng.choice([1, 2]), rng.choice([0.8, 1.0, 0.37]))
        for _ in range(300)
    ]
    for mbit, cap in cases:
        least = least_within_mbps(mbit, cap)
        for mbps in (least, math.nextafter(least, 0.0), math.nextafter(least, math.inf)):
            if 0.0 < mbps < math.inf:
                assert link_within(mbit, mbps, cap) == (mbps >= least), (mbit, cap, mbps)
        for _ in range(20):
            mbps = least * rng.uniform(0.5, 1.5) if 0 < least < math.inf else rng.uniform(0.01, 1e4)
            assert link_within(mbit, mbps, cap) == (mbps >= least), (mbit, cap, mbps)
    assert least_within_mbps(0.0, 0.8) == 0.0 and least_within_mbps(5.0, -0.1) == math.inf
    with pytest.raises(ValueError, match="negative"):
        least_within_mbps(-1.0, 0.8)
