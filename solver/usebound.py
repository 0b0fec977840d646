"""Lower bounds on what one app must use of compute, batteries and links, by chain DP.

Every placement of a partitioned app is a path through `solver.candidates.chain_arrays`'
layered graph, and its use of a device's compute (`compute_arrays`), of a battery
(`battery_arrays`) or of a link (`link_arrays`) is a sum of the same block and transfer
terms. So the cheapest path under a weighted sum of
those uses is a lower bound on that weighted use over every placement; leaving the SLO
and the other limits out keeps it one, and keeps it one DP for many weightings at once.
Summed over the apps of a camera, a bound above what the camera's battery and uplink have
left proves that no plan exists: a proof in milliseconds, where the exact model takes
seconds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from solver.candidates import battery_arrays, chain_arrays, chain_dp
from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.problem import Problem
from solver.scenario import App


def link_arrays(
    problem: Problem,
    fleet: Fleet,
    app: App,
    model_id: str,
    routes: CandidateRoutes,
    link: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Utilization of `link` that each term of `chain_arrays` causes: (1, n, K) per
    block (the input from the source on block 0, exits' and the last block's results to
    the sink), (1, n-1, K, K) per transfer; as `fastcost.Scorer` books it."""
    s = problem.cost.shapes[model_id]
    layers = s.model.layers
    n = s.n
    hosts = routes.hosts
    k = len(hosts)
    ids = fleet.ids
    table = problem.cost.routes
    src, sink = fleet.index[app.source], fleet.index[app.sink_id]
    per_mb = app.rate_rps * 8.0 / fleet.links[link].mbps
    res = layers[-1].out_mb

    def crosses(a: int, b: int) -> float:
        r = table.route(ids[a], ids[b]) if a != b else None
        return 1.0 if r is not None and link in r.links else 0.0

    ub = np.zeros((1, n, max(k, 1)))
    tb = np.zeros((1, max(n - 1, 0), max(k, 1), max(k, 1)))
    ub[0, 0, :k] += per_mb * s.model.input_mb * np.array([crosses(src, h) for h in hosts])
    emass = np.array(s.reach) * np.array(s.exit_prob)
    out = np.array([layer.out_mb for layer in layers[:-1]]) * np.array(s.cont[:-1])
    for a, h in enumerate(hosts):
        to_sink = crosses(h, sink)
        if to_sink:
            ub[0, :, a] += per_mb * res * emass
            ub[0, -1, a] += per_mb * res * s.cont[-1]
        moves = np.array([crosses(h, g) for g in hosts])
        tb[0, :, a, :k] += per_mb * out[:, None] * moves[None, :]
    return ub, tb


def compute_arrays(
    problem: Problem, fleet: Fleet, app: App, model_id: str, routes: CandidateRoutes, device: int
) -> tuple[np.ndarray, np.ndarray]:
    """Utilization of `device`'s compute that each term of `chain_arrays` causes: a
    block's expected GFLOP on it, and a segment's overhead where one starts on it (block
    0, or a move into it); as `fastcost.Scorer` books it."""
    s = problem.cost.shapes[model_id]
    layers = s.model.layers
    n, hosts = s.n, routes.hosts
    k = len(hosts)
    ub = np.zeros((1, n, max(k, 1)))
    tb = np.zeros((1, max(n - 1, 0), max(k, 1), max(k, 1)))
    if device not in hosts:
        return ub, tb
    a = hosts.index(device)
    rate = app.rate_rps
    g = np.array([layer.gflops + s.exit_gflops[i] for i, layer in enumerate(layers)])
    ub[0, :, a] = rate * np.array(s.reach) * g / fleet.gflops[device]
    overhead_s = fleet.ow[device] / 1000.0
    ub[0, 0, a] += rate * s.reach[0] * overhead_s
    tb[0, :, :, a] += rate * overhead_s * np.array(s.reach[1:])[:, None]
    return ub, tb


class LeastUse:
    """One app's compute, battery and link use arrays per model it may run, over its candidate
    hosts; `lower(mixes)` bounds the weighted use of any placement. A cascade is not
    bounded here (its bound is 0, which keeps every sum a bound)."""

    def __init__(
        self,
        problem: Problem,
        fleet: Fleet,
        app: App,
        routes: CandidateRoutes,
        resources: list[int],
    ) -> None:
        n = fleet.n
        self.parts: list[tuple[Any, dict[int, tuple[np.ndarray, np.ndarray]]]] = []
        if app.cascade is not None or not routes.hosts:
            return
        for m in problem.model_options(app):
            ch = chain_arrays(problem, fleet, [app], m, [routes])
            arrays = {}
            for r in resources:
                if r < n:
                    arrays[r] = compute_arrays(problem, fleet, app, m, routes, r)
                elif 2 * n <= r < 3 * n:
                    arrays[r] = battery_arrays(problem, fleet, app, m, routes, {r - 2 * n: 1.0})
                elif r >= 3 * n:
                    arrays[r] = link_arrays(problem, fleet, app, m, routes, r - 3 * n)
            self.parts.append((ch, arrays))

    def lower(self, mixes: list[dict[int, float]]) -> np.ndarray:
        """Per mix of weights, the least sum(weights[r] * use of r) of any placement over
        the candidate hosts (SLO left out: a bound, and one DP for every mix at once; the
        SLO's Lagrangian relaxation proved no more on the bench's fleets at 4x the cost)."""
        least = np.full(len(mixes), INF)
        if not self.parts:
            return np.zeros(len(mixes))
        for ch, arrays in self.parts:
            k = ch.u.shape[2]
            u = np.zeros((len(mixes), *ch.u.shape[1:]))
            t = np.zeros((len(mixes), *ch.t.shape[1:]))
            for j, weights in enumerate(mixes):
                for r, w in weights.items():
                    if r in arrays:
                        u[j] += w * arrays[r][0][0, :, :k]
                        t[j] += w * arrays[r][1][0, :, :k, :k]
            many = len(mixes)
            use = replace(
                ch,
                u=np.where(np.isfinite(ch.u), u, INF),
                t=np.where(np.isfinite(ch.t), t, INF),
                uw=np.broadcast_to(ch.uw, u.shape),
                tw=np.broadcast_to(ch.tw, t.shape),
                stages=np.repeat(ch.stages, many),
            )
            least = np.minimum(least, chain_dp(use, np.zeros(many), np.arange(many))[0])
        return least


__all__ = ["LeastUse", "compute_arrays", "link_arrays"]
