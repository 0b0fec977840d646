"""The triangle-inequality floors of the large-fleet bound: never above a true distance."""

from __future__ import annotations

import numpy as np
import pytest

from solver import Problem
from solver.fastcost import INF
from solver.fleetfloor import both_ways, nearest
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
