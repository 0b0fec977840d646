"""The large-fleet bound's path computations against brute force on small cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solver.fastcost import INF
from solver.fleetpaths import Distances, leaving_dp, relaxed_dp


def _all_distances(n: int, links: list[tuple[int, int, float]], start: int) -> np.ndarray:
    """Least sums of link weights from `start`, by Bellman-Ford (another method)."""
    dist = np.full(n, INF)
    dist[start] = 0.0
    for _ in range(n):
        for a, b, w in links:
            dist[b] = min(dist[b], dist[a] + w)
            dist[a] = min(dist[a], dist[b] + w)
    return dist


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_are_the_least_sums_from_any_source(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 14
    links = [
        (a, b, 0.0 if rng.random() < 0.1 else float(rng.uniform(1, 30)))
        for a, b in itertools.combinations(range(n), 2)
        if rng.random() < 0.25
    ]
    a = np.array([x for x, _, _ in links], dtype=np.int64)
    b = np.array([y for _, y, _ in links], dtype=np.int64)
    w = np.array([z for _, _, z in links])
    sources = rng.choice(n, 3, replace=False)
    got = Distances(n, a, b, [w, 2.0 * w]).of(sources)
    truth = np.min([_all_distances(n, links, int(s)) for s in sources], axis=0)
    np.testing.assert_allclose(got[0], truth, rtol=1e-12)
    np.testing.assert_allclose(got[1], 2.0 * truth, rtol=1e-12)


def _paths(
    u: np.ndarray, co: np.ndarray, cn: np.ndarray, c1: np.ndarray, c0: np.ndarray
) -> list[tuple[float, tuple[int, ...]]]:
    """Every host sequence of one app (no segment limit) and its cost."""
    n, w = u.shape
    out = []
    for seq in itertools.product(range(w), repeat=n):
        cost = u[0, seq[0]]
        for i in range(n - 1):
            x, y = seq[i], seq[i + 1]
            if x != y:
                cost += co[i] * c1[x, y] + cn[i] * c0[x, y]
            cost += u[i + 1, y]
        out.append((float(cost), seq))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_leaving_dp_is_the_least_path_that_leaves_the_candidates(seed: int) -> None:
    """Brute force over every host sequence: the least one that runs a block on a virtual
    host (column k or later) or takes a marked transfer; the relaxed DP is the least of
    all, and the least of both DPs' kinds of path."""
    rng = np.random.default_rng(seed)
    n, k, w = 4, 2, 4
    u = rng.uniform(0.1, 2.0, (n, w))
    u[rng.random((n, w)) < 0.15] = INF
    co, cn = rng.uniform(0.0, 1.0, n - 1), rng.uniform(0.5, 1.0, n - 1)
    c1, c0 = rng.uniform(0.0, 1.0, (w, w)), rng.uniform(0.0, 1.0, (w, w))
    c0[rng.random((w, w)) < 0.2] = INF
    enter = rng.random((k, k)) < 0.4
    np.fill_diagonal(enter, False)
    paths = _paths(u, co, cn, c1, c0)

    def leaves(seq: tuple[int, ...]) -> bool:
        if max(seq) >= k:
            return True
        return any(seq[i] != seq[i + 1] and enter[seq[i], seq[i + 1]] for i in range(n - 1))

    least = min(c for c, _ in paths)
    leaving = min((c for c, s in paths if leaves(s)), default=INF)
    args = (u[None], co[None], cn[None], c1[None], c0[None])
    got = float(leaving_dp(*args, k, enter[None])[0])
    assert got <= leaving * (1 + 1e-12)
    assert got >= leaving * (1 - 2e-4)  # single precision, lowered by its rounding bound
    everything = float(relaxed_dp(*args)[0])
    assert everything <= least and everything >= least * (1 - 2e-4)
