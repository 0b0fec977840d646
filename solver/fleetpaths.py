"""The two path computations of the large-fleet bound (`solver.fleetbound`): least
distances from a set of devices, and the least path through an app's layered graph with
the SLO and the segment limit relaxed."""

from __future__ import annotations

import heapq

import numpy as np

from solver.fastcost import INF

_F32_SLACK = 1e-4


def relaxed_dp(u: np.ndarray, moves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per app, the least cost of a path through the layered graph with the SLO and the
    limit on segments relaxed: a bound all the same, and a pass without the stage
    dimension. Block costs `u` (na, n, W); a move after block i from host x to host y
    costs the sum over `moves` of coef[:, i] * m[:, x, y] (say the MB that continue
    times a cost per MB, the probability of continuing times a fixed cost), so that the
    move arrays are (na, W, W), not one per block."""
    # In single precision, half the memory traffic: each sum has at most a few hundred
    # terms, all positive, so its relative rounding error is under 1e-4 (a few hundred
    # times 2**-24); the result is lowered by that much to stay a bound.
    u = u.astype(np.float32)
    terms = [(c.astype(np.float32), m.astype(np.float32)) for c, m in moves]
    v = u[:, 0, :]
    for i in range(u.shape[1] - 1):
        c, m = terms[0]
        move = m * c[:, i, None, None]
        for c, m in terms[1:]:
            move += m * c[:, i, None, None]
        move += v[:, :, None]
        v = np.minimum(v, move.min(axis=1)) + u[:, i + 1, :]
    return v.min(axis=1).astype(np.float64) * (1.0 - _F32_SLACK)


def distances(
    adj: list[list[tuple[int, float]]], leaves: dict[int, tuple[int, float]], sources: np.ndarray
) -> np.ndarray:
    """Least sum of link weights from any of `sources` to every device (Dijkstra). A
    device with a single link (`leaves`: its neighbour and the link's weight) relays
    nothing: it is left out of `adj`, a source among them starts at its neighbour, and
    its own distance is its neighbour's plus its link's."""
    dist = [INF] * len(adj)
    heap = []
    for s in sources.tolist():
        dist[s] = 0.0
        leaf = leaves.get(s)
        if leaf is None:
            heap.append((0.0, s))
        elif leaf[1] < dist[leaf[0]]:
            dist[leaf[0]] = leaf[1]
            heap.append((leaf[1], leaf[0]))
    heapq.heapify(heap)
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, u = pop(heap)
        if d > dist[u]:
            continue
        for v, w in adj[u]:
            nd = d + w
            if nd < dist[v]:
                dist[v] = nd
                push(heap, (nd, v))
    for x, (nb, w) in leaves.items():
        dist[x] = min(dist[x], dist[nb] + w)
    return np.array(dist)


__all__ = ["distances", "relaxed_dp"]
