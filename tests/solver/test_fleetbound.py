"""The large-fleet lower bound: never above the optimum, whichever candidates it is given."""

from __future__ import annotations

import heapq
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from solver import Problem, SolveOptions, Status, fleetbound, load_scenario, solve
from solver.fastcost import candidate_routes
from solver.fleetbound import FleetBound
from solver.fleetfloor import floors
from solver.generate import generate
from solver.heuristic import adjacency, fleet_of
from solver.hosts import pick_hosts
from solver.routes import transfer_ms
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


def _two_way_camera() -> dict[str, Any]:
    """A camera whose least-rtt way out is a slow link (2 ms, 5 Mbit/s) and whose other
    link is fast but far (30 ms, 200 Mbit/s); both edges reach every cloud in 10 ms."""
    device = {"power_w": {"idle": 1.0, "busy": 5.0}, "memory_mb": 4096}
    devices: list[dict[str, Any]] = [
        {"id": "cam", "tier": "device", "gflops": 10, **device},
        {"id": "edge-0", "tier": "edge", "gflops": 100, **device},
        {"id": "edge-1", "tier": "edge", "gflops": 100, **device},
    ]
    links = [
        {"a": "cam", "b": "edge-0", "mbps": 5, "rtt_ms": 2, "j_per_mb": 0.1},
        {"a": "cam", "b": "edge-1", "mbps": 200, "rtt_ms": 30, "j_per_mb": 0.1},
    ]
    for c in range(60):
        devices.append({"id": f"cloud-{c}", "tier": "cloud", "gflops": 1000 + 10 * c, **device})
        for e in ("edge-0", "edge-1"):
            links.append({"a": e, "b": f"cloud-{c}", "mbps": 1000, "rtt_ms": 10, "j_per_mb": 0.1})
    layers = [{"name": "b0", "gflops": 1.0, "params_mb": 1.0, "out_mb": 2.0}]
    return {
        "version": 1,
        "devices": devices,
        "links": links,
        "models": [{"id": "m", "input_mb": 1.0, "layers": layers}],
        "apps": [{"id": "a", "model": "m", "source": "cam", "rate_rps": 1}],
    }


def test_a_route_to_a_virtual_host_leaves_by_one_of_the_senders_links() -> None:
    """Every route from the camera to a cloud takes the 2 ms, 5 Mbit/s link (12 ms
    against 40 ms by the other). The bound's time to a virtual host may not assume the
    fast link's Mbit/s with the slow link's rtt: for the largest transfer it is at least
    the least over the camera's links of that link's time, and never above the true one."""
    problem = Problem(parse_scenario(_two_way_camera()))
    fleet = fleet_of(problem)
    app = problem.scenario.apps[0]
    routes = candidate_routes(fleet, app, [fleet.index["cam"]], upward_only=True)
    bound = FleetBound(problem, fleet)
    away = bound.elsewhere(app, bound.completed(routes))
    smax = 2.0  # the largest transfer of the fleet: b0's output
    w1, w0 = away.inbound[2], away.inbound[3]
    clouds = [j for j, cc in enumerate(away.cc) if np.isfinite(cc) and away.wk[j] < 1.0]
    assert clouds
    for j in clouds:
        fast_but_far = transfer_ms(30.0 + 10.0, 200.0, smax)
        slow = transfer_ms(2.0 + 10.0, 5.0, smax)
        assert w0[j] + smax * w1[j] >= min(fast_but_far, slow) - 1e-9
        assert w0[j] <= transfer_ms(12.0, 5.0, 0.0) + 1e-9
    exact = solve(problem, SolveOptions(time_limit_s=60), solver="ilp")
    assert exact.objective is not None
    assert 0 < bound.lower([(app, routes)]) <= exact.objective * (1 + 1e-9)


def test_an_slo_priced_in_raises_the_bound_and_keeps_it_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On this fleet an app's cheapest relaxed path breaks its SLO: with the SLO priced in
    (Lagrange) the bound rises, and stays under the exact optimum."""
    scn = parse_scenario(generate(4, devices=24, apps=8, blocks=4))
    exact = solve(Problem(scn), SolveOptions(time_limit_s=60), solver="ilp")
    assert exact.status == Status.OPTIMAL and exact.objective is not None
    priced = [_bound(Problem(scn), cap) for cap in (1, 2)]
    monkeypatch.setattr(fleetbound, "LAMBDAS", ())
    relaxed = [_bound(Problem(scn), cap) for cap in (1, 2)]
    for with_slo, without in zip(priced, relaxed, strict=True):
        assert without < with_slo <= exact.objective * (1 + 1e-9)


def test_each_virtual_host_is_as_far_as_the_nearest_host_it_stands_for() -> None:
    """The floor under the rtt from an app's source to a virtual host is the distance to
    the nearest non-candidate of its own slice (not of its whole tier): exactly that when
    the search may go as far as it likes."""
    problem = Problem(parse_scenario(generate(3, devices=200, apps=20, blocks=4)))
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    bound = FleetBound(problem, fleet)
    keys, ways = bound._slice_ways()
    graph: list[list[tuple[int, float]]] = [[] for _ in range(fleet.n)]
    for lk in fleet.links:
        a, b = fleet.index[lk.a], fleet.index[lk.b]
        graph[a].append((b, lk.rtt_ms))
        graph[b].append((a, lk.rtt_ms))
    checked = 0
    for app in problem.scenario.apps:
        hosts = pick_hosts(problem, fleet, adj, app, 5)
        routes = candidate_routes(fleet, app, hosts, upward_only=True)
        of = bound._slices(app.allowed_tiers).keys
        floor = floors(fleet, ways, keys, app, routes, of, 10_000)
        src = fleet.index[app.source]
        dist = np.full(fleet.n, np.inf)
        dist[src] = 0.0
        heap = [(0.0, src)]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            for v, w in graph[u]:
                if d + w < dist[v]:
                    dist[v] = d + w
                    heapq.heappush(heap, (d + w, v))
        for j, key in enumerate(of):
            stands_for = [h for h in range(fleet.n) if keys[h] == key and h not in hosts]
            nearest = min((dist[h] for h in stands_for), default=np.inf)
            if np.isfinite(nearest):
                assert floor[0, j, 0] == pytest.approx(nearest)
                checked += 1
    assert checked > 100


def test_slices_are_small_where_hosts_are_cheap() -> None:
    assert fleetbound.cuts(83, 12) == [1, 2, 3, 4, 6, 9, 13, 19, 27, 40, 57]
    assert fleetbound.cuts(2500, 6) == [4, 14, 50, 184, 679]
    assert fleetbound.cuts(5, 100) == [1, 2, 3, 4]  # more slices than hosts: one each
    assert fleetbound.cuts(1, 3) == []


def test_small_cheap_slices_bound_tighter_than_equal_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """The DP takes the cheapest slices: when they are small, their least cost and their
    distance sit with nearly the same host (a 500-device fleet: the bound rises by about
    a point of the plan), and it stays a bound."""
    problem = Problem(parse_scenario(generate(1, devices=500, apps=250, blocks=8)))
    plan = solve(problem, SolveOptions(time_limit_s=60, threads=1), solver="heuristic")
    assert plan.objective is not None
    small = _bound(problem, 10)
    monkeypatch.setattr(
        fleetbound, "cuts", lambda n, count: [n * k // count for k in range(1, count)]
    )
    equal = _bound(problem, 10)
    assert equal + 0.005 * plan.objective < small <= plan.objective
