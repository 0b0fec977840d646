"""The heuristic where constraints bind: near the proven optimum on contended fleets,
neighbourhood search that never breaks a plan, and a proven infeasible verdict that names
the app and the resource."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from solver import Problem, SolveOptions, Status, evaluate, solve
from solver.candidates import battery_arrays
from solver.fastcost import Fleet, Scorer, candidate_routes
from solver.generate import generate
from solver.heuristic import HOSTS, solve_greedy
from solver.hosts import adjacency, pick_hosts
from solver.neighbourhood import SATURATED, neighbourhoods, resource_use, search
from solver.plan import Placement
from solver.polish import polish
from solver.reasons import Code
from solver.scenario import parse_scenario
from solver.usebound import compute_arrays, link_arrays


def _problem(raw: dict[str, Any]) -> Problem:
    return Problem(parse_scenario(raw))


def _uplink_pair() -> dict[str, Any]:
    """Two apps of one camera that must both send their input over its uplink to the edge
    box: each alone uses 0.5 of the link, together 1.0, over max_utilization 0.8."""
    device = {"gflops": 10, "memory_mb": 1024, "power_w": {"idle": 1, "busy": 3}}
    app = {"model": "net", "source": "cam-1", "rate_rps": 0.5, "allowed_tiers": ["edge"]}
    return {
        "version": 1,
        "devices": [
            {"id": "cam-1", "tier": "device", **device},
            {"id": "edge-1", "tier": "edge", **device, "gflops": 200, "memory_mb": 8192},
        ],
        "links": [{"a": "cam-1", "b": "edge-1", "mbps": 8, "rtt_ms": 5, "j_per_mb": 0.2}],
        "models": [
            {
                "id": "net",
                "input_mb": 1.0,
                "layers": [{"name": "b0", "gflops": 1.0, "params_mb": 10, "out_mb": 0.01}],
            }
        ],
        "apps": [{"id": "app-a", **app}, {"id": "app-b", **app}],
    }


def test_two_apps_over_one_uplink_are_infeasible_naming_the_app_and_the_link() -> None:
    # Proven by the least use each app must make of the uplink (solver.usebound).
    plan = solve(_problem(_uplink_pair()), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE and plan.placements == {}
    reason = plan.doc.reason or ""
    assert reason.startswith("app app-b: cannot be placed within bandwidth of link cam-1-edge-1")
    assert "app-a, app-b" in reason
    assert plan.reason is not None and plan.reason.code == Code.BANDWIDTH
    assert plan.reason.app == "app-b"


def test_one_app_over_its_uplink_is_infeasible_on_its_own() -> None:
    raw = _uplink_pair()
    raw["apps"] = raw["apps"][:1]
    raw["apps"][0]["rate_rps"] = 0.9  # 0.9 of the link, over 0.8 however it is split
    plan = solve(_problem(raw), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE
    reason = plan.doc.reason or ""
    assert reason.startswith("app app-a: cannot be placed within bandwidth of link cam-1-edge-1")


def test_two_apps_over_one_edge_box_are_infeasible_beside_each_other() -> None:
    # Memory is not in the use bound: the exact model on the two apps proves it.
    raw = _uplink_pair()
    raw["devices"].append({**raw["devices"][0], "id": "cam-2"})
    raw["links"].append({"a": "cam-2", "b": "edge-1", "mbps": 8, "rtt_ms": 5, "j_per_mb": 0.2})
    raw["apps"][1]["source"] = "cam-2"
    raw["devices"][1]["memory_mb"] = 15  # each app's 10 MB of weights fits, not both
    plan = solve(_problem(raw), SolveOptions(), solver="heuristic")
    assert plan.status == Status.INFEASIBLE
    assert plan.doc.reason == "app app-b: does not fit beside app-a (memory of edge-1)"
    assert plan.reason is not None and plan.reason.code == Code.MEMORY


def test_the_uplink_pair_fits_when_one_app_may_run_on_the_camera() -> None:
    raw = _uplink_pair()
    raw["apps"][1]["allowed_tiers"] = ["device", "edge"]
    problem = _problem(raw)
    plan = solve(problem, SolveOptions(), solver="heuristic")
    exact = solve(_problem(raw), SolveOptions(), solver="ilp")
    assert plan.status == Status.FEASIBLE and exact.status == Status.OPTIMAL
    assert plan.placements["app-b"].blocks == ("cam-1",)
    assert plan.objective is not None and exact.objective is not None
    assert plan.objective <= exact.objective * (1 + 1e-9)


def _contended(seed: int) -> dict[str, Any]:
    return generate(seed, devices=16, apps=10, blocks=6, contended=True)


def test_on_small_contended_fleets_the_heuristic_is_within_one_percent_of_the_optimum() -> None:
    # Where capacity binds hard the greedy steps may miss a plan (seed 21: the exact model
    # needs seconds to find one); where they find one it must be within 1%.
    found = 0
    for seed in (21, 22, 23, 24, 25, 26):
        exact = solve(_problem(_contended(seed)), SolveOptions(time_limit_s=30), solver="ilp")
        if exact.status != Status.OPTIMAL:
            continue
        problem = _problem(_contended(seed))
        plan = solve(problem, SolveOptions(), solver="heuristic")
        if plan.status == Status.INFEASIBLE:
            continue
        assert plan.objective is not None and exact.objective is not None
        assert plan.objective <= 1.01 * exact.objective, seed
        assert evaluate(problem.cost, plan.placements).violations == []
        found += 1
    assert found >= 4, "the heuristic found too few of the plans that exist"


def _saturated_greedy_plan() -> tuple[Problem, Fleet, Any]:
    for seed in range(30, 45):
        problem = _problem(generate(seed, devices=16, apps=24, blocks=6, contended=True))
        plan = solve_greedy(problem, SolveOptions())
        if plan.status != Status.FEASIBLE:
            continue
        fleet = Fleet(problem)
        if neighbourhoods(problem, SolveOptions(), fleet, plan):
            return problem, fleet, plan
    raise AssertionError("no generated fleet with a saturated shared resource")


def test_neighbourhoods_are_apps_that_share_a_saturated_resource() -> None:
    problem, fleet, plan = _saturated_greedy_plan()
    load, users = resource_use(problem, fleet, plan)
    share = load / np.where(fleet.capacity > 0, fleet.capacity, 1.0)
    saturated = [r for r in range(len(share)) if share[r] >= SATURATED]
    for group in neighbourhoods(problem, SolveOptions(), fleet, plan):
        assert len(group) > 1
        assert any(group <= set(users.get(r, {})) for r in saturated), group


def test_neighbourhood_search_keeps_the_plan_feasible_and_never_worse() -> None:
    problem, fleet, plan = _saturated_greedy_plan()

    def reoptimise(held: SolveOptions, incumbent: Any, seconds: float, nodes: int) -> Any:
        return polish(problem, held, incumbent, seconds, nodes)

    better = search(problem, SolveOptions(), fleet, plan, {}, 5.0, reoptimise)
    if better is None:
        return  # nothing better around the saturated resources: the plan stands
    assert better.status == Status.FEASIBLE
    assert better.objective is not None and plan.objective is not None
    assert better.objective < plan.objective
    assert evaluate(problem.cost, better.placements).violations == []
    assert set(better.placements) == set(plan.placements)


def test_use_arrays_agree_with_the_scorer_on_every_resource() -> None:
    raw = generate(41, devices=16, apps=10, blocks=6, overheads=True, contended=True)
    problem = _problem(raw)
    fleet = Fleet(problem)
    scorer = Scorer(fleet, problem.migration)
    adj = adjacency(problem, fleet)
    checked = 0
    for app in problem.scenario.apps:
        if app.cascade is not None:
            continue
        hosts = pick_hosts(problem, fleet, adj, app, HOSTS)
        routes = candidate_routes(fleet, app, hosts, upward_only=False)
        m = problem.model_options(app)[0]
        n = problem.cost.shapes[m].n
        src = fleet.index[app.source]
        k = len(hosts)
        # The camera alone, the camera then each host, and each host alone.
        paths = [[hosts.index(src)] * n] if src in hosts else []
        for h in range(k):
            paths.append([h] * n)
            if src in hosts:
                paths.append([hosts.index(src)] * (n // 2) + [h] * (n - n // 2))
        for path in paths:
            placement = Placement(
                app=app.id, model=m, blocks=tuple(fleet.ids[hosts[h]] for h in path)
            )
            sc = scorer.score(app, placement)
            if not sc.routable:
                continue
            use = dict(zip(sc.resources.tolist(), sc.amounts.tolist(), strict=True))
            for r in {*use, src, 2 * fleet.n + src}:
                if fleet.n <= r < 2 * fleet.n:
                    continue  # memory is not a sum along the path
                if 2 * fleet.n <= r < 3 * fleet.n and not fleet.has_battery[r - 2 * fleet.n]:
                    continue  # mains powered: no battery row
                if r < fleet.n:
                    ub, tb = compute_arrays(problem, fleet, app, m, routes, r)
                elif r < 3 * fleet.n:
                    ub, tb = battery_arrays(problem, fleet, app, m, routes, {r - 2 * fleet.n: 1.0})
                else:
                    ub, tb = link_arrays(problem, fleet, app, m, routes, r - 3 * fleet.n)
                total = sum(ub[0, i, path[i]] for i in range(n))
                total += sum(
                    tb[0, i, path[i], path[i + 1]] for i in range(n - 1) if path[i] != path[i + 1]
                )
                assert total == pytest.approx(use.get(r, 0.0), rel=1e-9, abs=1e-12), (app.id, r)
                checked += 1
    assert checked > 100
