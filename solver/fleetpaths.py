"""The path computations of the large-fleet bound (`solver.fleetbound`): least
distances from a set of devices, the least path through an app's layered graph within
its segment limit (and within its SLO, by pruning and a price), and a cascade's least
stage hosts over its virtual hosts too."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.problem import Problem
from solver.scenario import App

_F32_SLACK = 1e-4


Moves = list[tuple[np.ndarray, np.ndarray]]


def _move(terms: Moves | np.ndarray, i: int) -> np.ndarray:
    """The (na, W, W) figure of a move after block i: sum of coef[:, i] * m (or the
    block's own slice of an (na, n - 1, W, W) array)."""
    if isinstance(terms, np.ndarray):
        return terms[:, i].copy()
    c, m = terms[0]
    step = m * c[:, i, None, None]
    for c, m in terms[1:]:
        step += m * c[:, i, None, None]
    return step


class Gate(NamedTuple):
    """What an SLO rules out of an app's layered graph (`within_slo`): the blocks on hosts
    (na, n, W) and the moves after each block (n - 1 of (na, W, W)) that no path within
    the SLO takes."""

    blocks: np.ndarray
    moves: list[np.ndarray]


def within_slo(
    uw: np.ndarray,
    times: Moves | np.ndarray,
    slo: np.ndarray,
    ends: tuple[np.ndarray, np.ndarray] | None = None,
) -> Gate:
    """The least worst-case ms of a path through each block on each host, and through
    each move, forward and backward, whatever the segment limit (so at most the least
    within it), from the blocks' ms `uw` (na, n, W) and the moves' (`times`, as
    `relaxed_dp`'s moves): one whose least path exceeds the SLO is on no path that meets
    it, so leaving it out of a bound's DP keeps it a bound. (Priced alone, Lagrange, a
    cheap path that breaks the SLO and a dear one that keeps it average out under it:
    bench/RESULTS.md.) `ends` (na, W) each: the least fixed ms (half the rtt) of a route
    from the source to each host, and from each host to the sink. The rtt of the
    contract's routes is the least, a metric, so a path reaching a host has spent at least
    the first, and one leaving it will spend at least the second, however many moves it
    makes on the way (the DP's own sums only know the moves' figures, and between two
    virtual hosts those are their slices' least distance)."""
    uw = uw.astype(np.float32)
    if isinstance(times, np.ndarray):
        times = times.astype(np.float32)
    else:
        times = [(c.astype(np.float32), m.astype(np.float32)) for c, m in times]
    # Single precision, as `relaxed_dp`: sums of a few dozen positive terms round within
    # 1e-5 relative, so a path is ruled out only past the SLO plus twice `_F32_SLACK`.
    limit = (slo * (1.0 + 2 * _F32_SLACK)).astype(np.float32)[:, None, None]
    n = uw.shape[1]
    # The least ms of each block anywhere; block 0's and the last's hold the routes from
    # the source and to the sink, which `ends` stand for.
    least = np.zeros(uw.shape[:2], dtype=np.float32)
    least[:, 1:-1] = uw[:, 1:-1].min(axis=2)
    before, rest = np.cumsum(least, axis=1), np.cumsum(least[:, ::-1], axis=1)[:, ::-1]
    ins, outs = (np.zeros_like(uw[:, 0]),) * 2 if ends is None else ends
    into = np.empty_like(uw)  # the least ms up to and including block i on host x
    into[:, 0] = uw[:, 0]
    step = [_move(times, i) for i in range(n - 1)]
    for i in range(n - 1):
        moved = (into[:, i, :, None] + step[i]).min(axis=1)
        into[:, i + 1] = np.minimum(into[:, i], moved) + uw[:, i + 1]
        np.maximum(into[:, i + 1], ins + before[:, i + 1, None], out=into[:, i + 1])
    after = np.zeros_like(uw[:, 0])  # the least ms from the end of block i on x to the end
    dead: list[np.ndarray] = [np.zeros(0, dtype=bool)] * (n - 1)
    blocks = np.empty(uw.shape, dtype=bool)
    blocks[:, n - 1] = into[:, n - 1] > limit[:, :, 0]
    for i in range(n - 2, -1, -1):
        nxt = after + uw[:, i + 1]
        through = step[i]
        through += nxt[:, None, :]
        after = np.maximum(np.minimum(nxt, through.min(axis=2)), outs + rest[:, i + 1, None])
        through += into[:, i, :, None]
        dead[i] = through > limit
        blocks[:, i] = into[:, i] + after > limit[:, :, 0]
    return Gate(blocks, dead)


def end_ms(
    members: list[tuple[CandidateRoutes, Away]], kmax: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """`within_slo`'s `ends` for apps whose DP columns are their candidates, then their
    virtual hosts from `kmax`: the fixed ms from the source and to the sink (0 where a
    candidate has no route figured)."""
    ins, outs = np.zeros((len(members), width)), np.zeros((len(members), width))
    for a, (r, v) in enumerate(members):
        k, j = len(r.hosts), len(v.cc)
        ins[a, :k], outs[a, :k] = np.where(r.in_ok, r.in_w0, 0.0), np.where(r.out_ok, r.out_w0, 0.0)
        ins[a, kmax : kmax + j], outs[a, kmax : kmax + j] = v.inbound[3], v.outbound[3]
    return ins.astype(np.float32), outs.astype(np.float32)


def relaxed_dp(
    u: np.ndarray, moves: Moves, stages: np.ndarray, gate: Gate | None = None
) -> np.ndarray:
    """Per app, the least cost of a path through the layered graph with at most
    `stages` (na,) segments (a move starts one). Block costs `u` (na, n, W); a move
    after block i from host x to host y costs the sum over `moves` of
    coef[:, i] * m[:, x, y] (say the MB that continue times a cost per MB, the
    probability of continuing times a fixed cost), so that the move arrays are
    (na, W, W), not one per block. With a `gate`, only the blocks and moves that some
    path within the SLO may take."""
    # In single precision, half the memory traffic: each sum has at most a few hundred
    # terms, all positive, so its relative rounding error is under 1e-4 (a few hundred
    # times 2**-24); the result is lowered by that much to stay a bound.
    u = u.astype(np.float32)
    if gate is not None:
        u[gate.blocks] = np.inf
    terms = [(c.astype(np.float32), m.astype(np.float32)) for c, m in moves]
    n = u.shape[1]
    top = int(min(stages.max(initial=1), n))
    # v[s]: the least cost with block i's segment the (s + 1)-th.
    v = [u[:, 0, :]] + [np.full_like(u[:, 0, :], np.inf) for _ in range(top - 1)]
    for i in range(n - 1):
        step = _move(terms, i)
        if gate is not None:
            np.putmask(step, gate.moves[i], np.inf)
        moved = [(step + v[s][:, :, None]).min(axis=1) for s in range(top - 1)]
        for s in range(top - 1, 0, -1):
            v[s] = np.minimum(v[s], moved[s - 1]) + u[:, i + 1, :]
        v[0] = v[0] + u[:, i + 1, :]
    per = np.stack([x.min(axis=1) for x in v])  # (top, na)
    allowed = np.arange(top)[:, None] < stages[None, :]
    return np.where(allowed, per, np.inf).min(axis=0).astype(np.float64) * (1.0 - _F32_SLACK)


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


@dataclass(frozen=True, slots=True)
class Away:
    """One app's virtual hosts (nv of them): the terms of the slices of hosts they stand
    for (`solver.fleetbound`), and `CandidateRoutes` figures (c1, c0, w1, w0) of the
    transfers from the source (4, nv), to the sink (4, nv), from each candidate host
    (4, nv, K) and back to it (4, nv, K)."""

    cc: np.ndarray
    wk: np.ndarray
    oc: np.ndarray
    ow: np.ndarray
    memory: np.ndarray
    inbound: np.ndarray
    outbound: np.ndarray
    to: np.ndarray
    back: np.ndarray
    pair: np.ndarray  # (4, nv, nv): from one virtual host to another (inf: itself)


def cascade_bound(
    problem: Problem, fleet: Fleet, app: App, routes: CandidateRoutes, away: Away
) -> float:
    """Least objective over every combination of stage hosts, virtual ones included,
    whose worst case meets the SLO (exact enumeration, as `cascade_options`)."""
    assert app.cascade is not None
    f, cm = fleet, problem.cost
    hosts = np.array(routes.hosts, dtype=np.int64)
    reach = cm.cascade_reach(app)
    last = len(app.cascade) - 1
    nv = len(away.cc)

    def column(values: np.ndarray, name: str) -> np.ndarray:
        return np.concatenate([values, getattr(away, name)])

    def route(side: str, j: int) -> np.ndarray:
        name = ("c1", "c0", "w1", "w0")[j]
        values = getattr(routes, f"{side}_{name}")
        return np.concatenate([values, (away.inbound if side == "in" else away.outbound)[j]])

    cc, wk = column(f.cc[hosts], "cc"), column(f.wk[hosts], "wk")
    oc, ow = column(f.oc[hosts], "oc"), column(f.ow[hosts], "ow")
    mem = column(f.memory[hosts], "memory")
    ic1, ic0, iw1, iw0 = (route("in", j) for j in range(4))
    oc1, oc0, ow1, ow0 = (route("out", j) for j in range(4))
    in_ok = np.concatenate([routes.in_ok, np.ones(nv, dtype=bool)])
    out_ok = np.concatenate([routes.out_ok, np.ones(nv, dtype=bool)])
    total = np.zeros(())
    worst = np.zeros(())
    for k, stage in enumerate(app.cascade):
        m = cm.models[stage.model]
        g = sum(layer.gflops for layer in m.layers)
        ep = 1.0 if k == last else (stage.exit_prob or 0.0)
        res = m.layers[-1].out_mb
        c = reach[k] * (g * cc + oc + m.input_mb * ic1 + ic0 + ep * (res * oc1 + oc0))
        w = g * wk + ow + m.input_mb * iw1 + iw0
        if k == last:
            w = w + res * ow1 + ow0
        bad = ~in_ok | ~out_ok | (m.params_mb > mem)
        total = np.add.outer(total, np.where(bad, INF, app.rate_rps * c))
        worst = np.add.outer(worst, np.where(bad, INF, w))
    slo = app.slo_ms if app.slo_ms is not None else INF
    meets = np.where(worst <= slo * (1.0 + 1e-9), total, INF)
    return float(meets.min()) if meets.size else INF


__all__ = ["Away", "Gate", "cascade_bound", "distances", "end_ms", "relaxed_dp", "within_slo"]
