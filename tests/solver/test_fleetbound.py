"""The large-fleet lower bound: never above the optimum, whichever candidates it is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solver import Problem, SolveOptions, Status, fleetbound, load_scenario, solve
from solver.fastcost import candidate_routes
from solver.fleetbound import FleetBound
from solver.generate import generate
from solver.heuristic import adjacency, fleet_of
from solver.hosts import pick_hosts
from solver.scenario import parse_scenario


def _bound(problem: Problem, cap: int) -> float:
    """The bound with each app's candidates cut to a neighbourhood of about `cap` hosts,
    as the heuristic has them on large fleets (every other host is left to the bound's
    virtual hosts)."""
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    apps = []
    for app in problem.scenario.apps:
        hosts = pick_hosts(problem, fleet, adj, app, cap)
        if len(hosts) > cap + cap // 2 + 2:
            hosts = hosts[: cap + cap // 2]  # small fleets: pick_hosts gives every host
        apps.append((app, candidate_routes(fleet, app, hosts, upward_only=True)))
    return FleetBound(problem, fleet).lower(apps)


def test_the_bound_is_below_every_shared_optimum(shared_scenarios: list[Path]) -> None:
    checked = 0
    for path in shared_scenarios:
        expected = json.loads(path.with_name(path.stem + ".expected.json").read_text())
        if expected.get("status") != "optimal" or load_scenario(path).previous is not None:
            continue  # migration counts against a previous plan the bound does not price
        problem = Problem(load_scenario(path))
        for cap in (1, 2):
            bound = _bound(problem, cap)
            assert bound <= expected["objective"] * (1 + 1e-9) + 1e-9, (path.name, cap, bound)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bound_is_below_the_exact_optimum_of_generated_fleets(seed: int) -> None:
    scn = parse_scenario(generate(seed, devices=24, apps=8, blocks=4))
    exact = solve(Problem(scn), SolveOptions(time_limit_s=60), solver="ilp")
    assert exact.status == Status.OPTIMAL and exact.objective is not None
    for cap in (1, 3):
        bound = _bound(Problem(scn), cap)
        assert 0 < bound <= exact.objective * (1 + 1e-9)


def test_the_heuristic_reports_a_bound_on_large_fleets() -> None:
    """Above 40 hosts per app the candidates are a neighbourhood; the plan still has a
    bound, under its objective."""
    scn = parse_scenario(generate(5, devices=300, apps=60, blocks=6))
    plan = solve(Problem(scn), SolveOptions(time_limit_s=60), solver="heuristic")
    assert plan.status == Status.FEASIBLE
    assert plan.doc.bound is not None and plan.objective is not None
    assert 0 < plan.doc.bound <= plan.objective


@pytest.mark.parametrize("slices", [1, 100])
def test_the_bound_holds_with_coarse_and_one_host_slices(
    slices: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slice per tier (all hosts in one virtual host) and one host per slice (every
    host its own): the exact optimum is never under either bound."""
    scn = parse_scenario(generate(4, devices=24, apps=8, blocks=4))
    exact = solve(Problem(scn), SolveOptions(time_limit_s=60), solver="ilp")
    assert exact.status == Status.OPTIMAL and exact.objective is not None
    monkeypatch.setattr(fleetbound, "SLICES", dict.fromkeys(("cloud", "edge", "device"), slices))
    for cap in (1, 2):
        bound = _bound(Problem(scn), cap)
        assert 0 < bound <= exact.objective * (1 + 1e-9)


@pytest.mark.parametrize("budget", [0, 1, 10_000])
def test_the_bound_holds_whatever_the_searches_reach(
    budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The floors from each app's ends hold whether their searches stop at once, after
    one device or never: the exact optimum is never under the bound."""
    scn = parse_scenario(generate(6, devices=30, apps=10, blocks=4))
    exact = solve(Problem(scn), SolveOptions(time_limit_s=60), solver="ilp")
    assert exact.status == Status.OPTIMAL and exact.objective is not None
    monkeypatch.setattr(fleetbound, "BUDGET", budget)
    for cap in (1, 2):
        bound = _bound(Problem(scn), cap)
        assert 0 < bound <= exact.objective * (1 + 1e-9)
