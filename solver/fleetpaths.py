"""The two path computations of the large-fleet bound (`solver.fleetbound`): least
distances from a set of devices, and the least path through an app's layered graph with
the SLO and the segment limit relaxed."""

from __future__ import annotations

import numpy as np

from solver.fastcost import INF

_F32_SLACK = 1e-4


def relaxed_dp(
    u: np.ndarray, co: np.ndarray, cn: np.ndarray, c1: np.ndarray, c0: np.ndarray
) -> np.ndarray:
    """Per app, the least cost of a path through the layered graph with the SLO and the
    limit on segments relaxed: a bound all the same, and a pass without the stage
    dimension. Block costs `u` (na, n, W); a move after block i from host x to host y
    costs co[:, i] * c1[:, x, y] + cn[:, i] * c0[:, x, y] (the MB that continue times a
    cost per MB, the probability of continuing times a fixed cost), so that the move
    arrays are (na, W, W), not one per block."""
    # In single precision, half the memory traffic: each sum has at most a few hundred
    # terms, all positive, so its relative rounding error is under 1e-4 (a few hundred
    # times 2**-24); the result is lowered by that much to stay a bound.
    u, co, cn = u.astype(np.float32), co.astype(np.float32), cn.astype(np.float32)
    c1, c0 = c1.astype(np.float32), c0.astype(np.float32)
    v = u[:, 0, :]
    for i in range(u.shape[1] - 1):
        move = c1 * co[:, i, None, None]
        move += c0 * cn[:, i, None, None]
        move += v[:, :, None]
        v = np.minimum(v, move.min(axis=1)) + u[:, i + 1, :]
    return v.min(axis=1).astype(np.float64) * (1.0 - _F32_SLACK)


def leaving_dp(
    u: np.ndarray,
    co: np.ndarray,
    cn: np.ndarray,
    c1: np.ndarray,
    c0: np.ndarray,
    k: int,
    enter: np.ndarray,
) -> np.ndarray:
    """`relaxed_dp` over the paths that leave an app's candidates: that run a block on a
    virtual host (a column k or later) or take a transfer between candidates marked in
    `enter` (na, k, k: one the heuristic did not route). Every other path uses the
    candidates and their routes alone, whose least cost the heuristic's own DP bounds
    with the SLO and the segment limit (`FleetBound.lower`'s `within`). A second state
    per host says whether the path has left yet; the paths that have not are kept on
    the candidates' columns only."""
    u, co, cn = u.astype(np.float32), co.astype(np.float32), cn.astype(np.float32)
    c1, c0 = c1.astype(np.float32), c0.astype(np.float32)
    inf = np.float32(INF)
    stay = u[:, 0, :k]  # not left yet
    left = u[:, 0, :].copy()
    left[:, :k] = inf
    marked = bool(enter.any())
    for i in range(u.shape[1] - 1):
        move = c1 * co[:, i, None, None]
        move += c0 * cn[:, i, None, None]
        out = move[:, :k, :] + stay[:, :, None]
        inner = out[:, :, :k]
        arrive = np.minimum(left, (move + left[:, :, None]).min(axis=1))
        arrive[:, k:] = np.minimum(arrive[:, k:], out[:, :, k:].min(axis=1))
        if marked:
            arrive[:, :k] = np.minimum(arrive[:, :k], np.where(enter, inner, inf).min(axis=1))
            inner = np.where(enter, inf, inner)
        stay = np.minimum(stay, inner.min(axis=1)) + u[:, i + 1, :k]
        left = arrive + u[:, i + 1, :]
    return left.min(axis=1).astype(np.float64) * (1.0 - _F32_SLACK)


class Distances:
    """Least sums of link weights (rtt, joules per MB) from any of a set of devices to
    every device: multi-source Dijkstra in C (scipy), one sparse graph per metric. A
    zero weight is a link all the same (scipy keeps explicit zeros of a sparse matrix as
    edges)."""

    def __init__(self, n: int, a: np.ndarray, b: np.ndarray, weights: list[np.ndarray]) -> None:
        # Imported here, as OR-Tools in `solver.ilp_model`: scipy costs about 0.25 s CPU and
        # 37 MB to import, which only a large fleet's bound pays back, not every solve.
        from scipy.sparse import csr_matrix

        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        self.graphs = [
            csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n, n)) for w in weights
        ]

    def of(self, sources: np.ndarray) -> list[np.ndarray]:
        """Per metric, the least sum from any of `sources` to each device (inf: none)."""
        from scipy.sparse.csgraph import dijkstra

        return [
            np.asarray(dijkstra(g, directed=True, indices=sources, min_only=True))
            for g in self.graphs
        ]


__all__ = ["Distances", "leaving_dp", "relaxed_dp"]
