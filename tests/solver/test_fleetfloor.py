"""The triangle-inequality floors of the large-fleet bound: never above a true distance."""

from __future__ import annotations

import numpy as np
import pytest

from solver import Problem
from solver.fastcost import INF
from solver.fleetfloor import both_ways, nearest, raise_to_routes
from solver.generate import generate
from solver.heuristic import fleet_of
from solver.scenario import parse_scenario


def _all_distances(adj: list[list[tuple[int, float]]], start: int) -> np.ndarray:
    """Least sums of link weights from `start`, by Bellman-Ford (no heap, another method)."""
    dist = np.full(len(adj), INF)
    dist[start] = 0.0
    for _ in range(len(adj)):
        before = dist.copy()
        for u, nbs in enumerate(adj):
            for v, w in nbs:
                dist[v] = min(dist[v], dist[u] + w)
        if np.array_equal(before, dist):
            break
    return dist


@pytest.mark.parametrize("budget", [0, 3, 10_000])
@pytest.mark.parametrize("grouped", ["by tier", "in slices"])
def test_nearest_is_the_least_distance_or_below_it(budget: int, grouped: str) -> None:
    """Per group of devices (their tiers, or slices of them as the bound cuts them), the
    least distance from a start to a device of the group not taken."""
    problem = Problem(parse_scenario(generate(2, devices=60, apps=10, blocks=4)))
    fleet = fleet_of(problem)
    tiers = list(fleet.tiers)
    if grouped == "in slices":
        tiers = [f"{t}:{i % 3}" for i, t in enumerate(tiers)]
    ways = both_ways(fleet, tiers)
    full: list[list[list[tuple[int, float]]]] = [[[] for _ in range(fleet.n)] for _ in (0, 1)]
    for lk in fleet.links:
        a, b = fleet.index[lk.a], fleet.index[lk.b]
        for m, w in enumerate((lk.rtt_ms, lk.j_per_mb)):
            full[m][a].append((b, w))
            full[m][b].append((a, w))
    rng = np.random.default_rng(0)
    for start in rng.choice(fleet.n, 12, replace=False).tolist():
        taken = set(rng.choice(fleet.n, 6, replace=False).tolist()) | {start}
        for metric in (0, 1):
            truth = _all_distances(full[metric], start)
            got = nearest(ways[metric], start, tiers, tuple(sorted(set(tiers))), taken, budget)
            for tier, d in got.items():
                far = [truth[x] for x in range(fleet.n) if tiers[x] == tier and x not in taken]
                least = min(far, default=INF)
                assert d <= least + 1e-9
                if budget >= fleet.n:
                    assert d == pytest.approx(least)


@pytest.mark.parametrize("budget", [0, 5, 32])
def test_the_route_floor_is_under_the_joules_of_every_route_to_the_group(budget: int) -> None:
    """`raise_to_routes` takes a group's floor on joules per MB from the contract's routes
    (least rtt), not from the least-joules paths: never above the route's joules to any
    device of the group, and above the least-joules floor for many."""
    problem = Problem(parse_scenario(generate(6, devices=200, apps=30, blocks=4)))
    fleet = fleet_of(problem)
    groups = [f"{t}:{i % 4}" for i, t in enumerate(fleet.tiers)]
    of = sorted(set(groups))
    ways = both_ways(fleet, groups)
    jpm = np.full((len(of), fleet.n), INF)  # least joules per MB from each group
    for j, key in enumerate(of):
        for x in range(fleet.n):
            if groups[x] == key:
                jpm[j, x] = 0.0
        for _ in range(fleet.n):  # Bellman-Ford over the links
            before = jpm[j].copy()
            for lk in fleet.links:
                a, b = fleet.index[lk.a], fleet.index[lk.b]
                jpm[j, a] = min(jpm[j, a], jpm[j, b] + lk.j_per_mb)
                jpm[j, b] = min(jpm[j, b], jpm[j, a] + lk.j_per_mb)
            if np.array_equal(before, jpm[j]):
                break
    rng = np.random.default_rng(1)
    checked = raised = 0
    for app in problem.scenario.apps:
        src = fleet.index[app.source]
        taken = set(rng.choice(fleet.n, 5, replace=False).tolist()) | {src}
        plain = np.zeros((2, len(of), 2))
        plain[1, :, 0] = plain[1, :, 1] = jpm[:, src]
        floor = plain.copy()
        raise_to_routes(floor, ways, groups, of, taken, (src, src), jpm, budget)
        raised += int((floor[1, :, 0] > plain[1, :, 0] * 1.05).sum())
        for j, key in enumerate(of):
            for x in range(fleet.n):
                if groups[x] != key or x in taken:
                    continue
                route = problem.cost.routes.route(app.source, fleet.ids[x])
                if route is not None:
                    assert floor[1, j, 0] <= route.j_per_mb + 1e-9, (app.id, fleet.ids[x])
                    checked += 1
    assert checked > 1000
    if budget:
        assert raised > len(problem.scenario.apps)


def test_the_route_floor_takes_the_least_joules_among_tied_routes() -> None:
    """Two routes of the same rtt: the contract picks one by its tie rules, so the floor
    is the lesser of their joules, whichever it picks."""
    device = {"gflops": 10, "memory_mb": 1024, "power_w": {"idle": 1.0, "busy": 2.0}}
    tiers = (("cam", "device"), ("a", "edge"), ("b", "edge"), ("far", "cloud"))
    links = [
        {"a": "cam", "b": "a", "mbps": 50, "rtt_ms": 5, "j_per_mb": 0.9},
        {"a": "cam", "b": "b", "mbps": 50, "rtt_ms": 5, "j_per_mb": 0.1},
        {"a": "a", "b": "far", "mbps": 50, "rtt_ms": 5, "j_per_mb": 0.9},
        {"a": "b", "b": "far", "mbps": 50, "rtt_ms": 5, "j_per_mb": 0.1},
    ]
    layers = [{"name": "b0", "gflops": 1.0, "params_mb": 1.0, "out_mb": 0.1}]
    scn = {
        "version": 1,
        "devices": [{"id": i, "tier": t, **device} for i, t in tiers],
        "links": links,
        "models": [{"id": "m", "input_mb": 1.0, "layers": layers}],
        "apps": [{"id": "x", "model": "m", "source": "cam", "rate_rps": 1}],
    }
    problem = Problem(parse_scenario(scn))
    fleet = fleet_of(problem)
    groups = list(fleet.tiers)
    ways = both_ways(fleet, groups)
    src = fleet.index["cam"]
    floor = np.zeros((2, 1, 2))
    raise_to_routes(floor, ways, groups, ["cloud"], {src}, (src, src), np.zeros((1, fleet.n)), 10)
    route = problem.cost.routes.route("cam", "far")
    assert route is not None and route.rtt_ms == 10.0  # through a: the smaller id
    assert floor[1, 0, 0] == pytest.approx(0.2)
    assert route.j_per_mb == pytest.approx(1.8)
