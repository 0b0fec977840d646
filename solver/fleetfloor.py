"""Floors under the large-fleet bound's route figures, by the triangle inequality.

Every host a virtual host of `solver.fleetbound` stands for is not among the app's
candidates. So it is at least as far (least rtt, least joules per MB) from the app's
source as the nearest device of its slice that is not a candidate: one search from the
source (and one from the sink) per metric finds that distance D for every slice, and
stops after a few devices, as the candidates are the source's neighbourhood (a slice not
reached by then is at least as far as the search went). From a candidate c it is at
least D less the route from the source to c. Without these floors a slice was as near as
its nearest host, often a candidate itself; with them the bound's gap at 10,000 devices
went from 14.2% to about 8%, and with a floor per slice rather than per tier to 5.7%
(bench/RESULTS.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.scenario import App

Adjacency = list[list[tuple[int, float]]]
FAR = 1e9  # a distance floor for "unreachable": ms or joules per MB no route comes near


@dataclass(frozen=True, slots=True)
class Ways:
    """One metric's links for `nearest`: each device's links to devices that relay (more
    than one link), and per tier its single-link neighbours (which relay nothing), each
    list by weight."""

    relay: Adjacency
    leaves: list[dict[str, list[tuple[float, int]]]]


def both_ways(fleet: Fleet, keys: Sequence[str] | None = None) -> tuple[Ways, Ways]:
    """The links of the fleet weighted by rtt and by joules per MB, as `Ways`, the
    single-link devices grouped by `keys` (one per device; default: their tiers)."""
    index = fleet.index
    tiers = fleet.tiers if keys is None else keys
    ends = [(index[lk.a], index[lk.b]) for lk in fleet.links]
    degree = [0] * fleet.n
    for a, b in ends:
        degree[a] += 1
        degree[b] += 1
    out = []
    for weight in ([lk.rtt_ms for lk in fleet.links], [lk.j_per_mb for lk in fleet.links]):
        relay: Adjacency = [[] for _ in range(fleet.n)]
        leaves: list[dict[str, list[tuple[float, int]]]] = [{} for _ in range(fleet.n)]
        for (a, b), w in zip(ends, weight, strict=True):
            for x, y in ((a, b), (b, a)):
                if degree[y] == 1:
                    leaves[x].setdefault(tiers[y], []).append((w, y))
                else:
                    relay[x].append((y, w))
        for at in leaves:
            for lst in at.values():
                lst.sort()
        out.append(Ways(relay, leaves))
    return out[0], out[1]


def nearest(
    ways: Ways,
    start: int,
    tiers: Sequence[str],
    allowed: tuple[str, ...],
    taken: set[int],
    budget: int,
) -> dict[str, float]:
    """Per group of `allowed` (`tiers` gives each device's: its tier, or its slice),
    least sum of link weights from `start` to a device of that group not in `taken`
    (Dijkstra stopped once each is known; inf if there is none). After `budget` settled
    devices the groups not reached get the distance the search had reached: no device
    left to settle is nearer. An app's candidates are its neighbourhood, so the search
    stays near it. Single-link devices are not searched through: each one's distance is
    its neighbour's plus its link, so when a device is settled its nearest such
    neighbour of each group not taken is noted (`pending`), final once the search has
    passed that distance."""
    want = set(allowed)
    out: dict[str, float] = {}
    pending: dict[str, float] = {}
    dist = {start: 0.0}
    heap = [(0.0, start)]
    pop, push = heapq.heappop, heapq.heappush
    settled = 0
    d = 0.0
    while heap:
        d, u = pop(heap)
        if d > dist[u]:
            continue
        t = tiers[u]
        if t not in out and t in want and u not in taken:
            out[t] = min(d, pending.pop(t, INF))
        # A pending leaf is final once the search has passed it: done when every group
        # is found or so pending (checked only when it may be, it costs a scan).
        if len(out) + len(pending) >= len(want) and all(pd <= d for pd in pending.values()):
            return {**pending, **out}
        settled += 1
        if settled > budget:
            return {t: out.get(t, min(d, pending.get(t, INF))) for t in allowed}
        for lt, lst in ways.leaves[u].items():
            if lt not in out and lt in want:
                for w, x in lst:
                    if x not in taken and x != start:
                        if d + w < pending.get(lt, INF):
                            pending[lt] = d + w
                        break
        for v, w in ways.relay[u]:
            nd = d + w
            if nd < dist.get(v, INF):
                dist[v] = nd
                push(heap, (nd, v))
    return {t: out.get(t, pending.get(t, INF)) for t in allowed}


# Paths whose rtt sums are this close are taken as ties (the contract rounds its sums to
# 1e-9 ms before it compares them): a floor over more paths is still a floor.
_TIE_MS = 1e-6


def route_floor(
    full: tuple[Ways, Ways],
    start: int,
    groups: Sequence[str],
    index: dict[str, int],
    taken: set[int],
    budget: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """What the least-rtt search from `start` says about the joules per MB of the
    contract's route (the least-rtt path, not the least-joules one) from it to each group
    (`groups`: each device's key; `index`: the keys wanted, in order) of devices not in
    `taken`. Each settled device's route is one of the least-rtt paths to it, so its
    joules per MB is at least the least over those (`lab`). A route to a device the
    search did not settle leaves the settled ones by a link (u, v): at least lab(u), the
    link's joules, and the least from v to the group. Returns the floor over the settled
    devices and their single-link neighbours per group (inf where none), and per link
    out (u, v) lab(u) plus its joules and v, for the caller to add the least from v;
    None where a link of near-zero rtt left a tie unresolved."""
    rtt, jpm = full
    dist = {start: 0.0}
    lab = {start: 0.0}
    heap = [(0.0, start)]
    pop, push = heapq.heappop, heapq.heappush
    seen: dict[int, float] = {}
    while heap and len(seen) <= budget:
        d, u = pop(heap)
        if u in seen or d > dist[u] + _TIE_MS:
            continue
        seen[u] = lu = lab[u]
        for (v, w), (_, j) in zip(rtt.relay[u], jpm.relay[u], strict=True):
            nd, old = d + w, dist.get(v, INF)
            if nd < old - _TIE_MS:
                if v in seen:
                    return None
                dist[v], lab[v] = nd, lu + j
                push(heap, (nd, v))
            elif nd <= old + _TIE_MS and lu + j < lab[v]:
                if v in seen:
                    return None
                lab[v] = lu + j
    floor = np.full(len(index), INF)
    base: list[float] = []
    out: list[int] = []
    for u, lu in seen.items():
        g = index.get(groups[u])
        if g is not None and u not in taken:
            floor[g] = min(floor[g], lu)
        for (v, _), (_, j) in zip(rtt.relay[u], jpm.relay[u], strict=True):
            if v not in seen:
                base.append(lu + j)
                out.append(v)
        for key, lst in jpm.leaves[u].items():  # by joules per MB
            g = index.get(key)
            if g is not None:
                for j, x in lst:
                    if x not in taken and x != start:
                        floor[g] = min(floor[g], lu + j)
                        break
    return floor, np.array(base), np.array(out, dtype=np.int64)


def raise_to_routes(
    floor: np.ndarray,
    full: tuple[Ways, Ways],
    keys: Sequence[str],
    of: list[str],
    taken: set[int],
    ends: tuple[int, int],
    slice_jpm: np.ndarray,
    budget: int,
) -> None:
    """Raise `floor`'s joules per MB from the source and the sink (`floors`' columns 0
    and 1) to what `route_floor` proves of the contract's routes; `slice_jpm` (nv, n):
    the least joules per MB from each virtual host's devices to every device."""
    index = {key: j for j, key in enumerate(of)}
    src, sink = ends
    for col, end in ((0, src),) if sink == src else ((0, src), (1, sink)):
        got = route_floor(full, end, keys, index, taken, budget)
        if got is None:
            continue
        least, base, out = got
        if out.size:
            least = np.minimum(least, (slice_jpm[:, out] + base[None, :]).min(axis=1))
        floor[1, :, col] = np.maximum(floor[1, :, col], np.minimum(least, FAR))
    if sink == src:
        floor[:, :, 1] = floor[:, :, 0]


def floors(
    f: Fleet,
    full: tuple[Ways, Ways],
    keys: Sequence[str],
    app: App,
    routes: CandidateRoutes,
    of: list[str],
    budget: int,
) -> np.ndarray:
    """Floors (2, nv, 2 + K) under the least rtt (0) and joules per MB (1) between each
    virtual host (`of`: the key in `keys` of the hosts it stands for, the ones `full`
    groups its single-link devices by) and the app's [source, sink, *candidates]: D of
    the virtual host's key from the source and from the sink, and from a candidate c the
    larger of D(source) less the route source -> c and D(sink) less the route c -> sink
    (a route's figures are a path's sums: no less than the least)."""
    hosts = routes.hosts
    src, sink = f.index[app.source], f.index[app.sink_id]
    wanted, taken = tuple(dict.fromkeys(of)), set(hosts)
    ends = [src] if sink == src else [src, sink]
    # (metric, end, virtual host): the floor of the hosts it stands for.
    far = np.array(
        [
            [
                [got[t] for t in of]
                for got in (nearest(full[j], e, keys, wanted, taken, budget) for e in ends)
            ]
            for j in (0, 1)
        ]
    )
    if sink == src:
        far = np.repeat(far, 2, axis=1)
    # Per candidate: (rtt, joules per MB) of the routes source -> c and c -> sink,
    # read back from `routes`' figures (fixed ms: half the rtt; cost per MB: joules
    # per MB times the sender's cost per joule sent plus the latency weight times ms
    # per MB), raised a little against rounding (a longer leg only lowers the floor);
    # inf where there is no route.
    wl = f.w.latency
    legs = np.full((2, 2, len(hosts)), INF)
    h = np.array(hosts, dtype=np.int64)
    for e, (ok, c1, w1, w0, sender) in enumerate(
        (
            (routes.in_ok, routes.in_c1, routes.in_w1, routes.in_w0, f.send[src]),
            (routes.out_ok, routes.out_c1, routes.out_w1, routes.out_w0, f.send[h]),
        )
    ):
        legs[0, e] = np.where(ok, 2.0 * w0, INF)
        with np.errstate(divide="ignore", invalid="ignore"):
            j = np.where(sender > 0, (c1 - wl * w1 + 1e-12 * (c1 + wl * w1)) / sender, INF)
        legs[1, e] = np.where(ok, np.maximum(j, 0.0) * (1.0 + 1e-12), INF)
    with np.errstate(invalid="ignore"):
        diff = far[:, :, :, None] - legs[:, :, None, :]  # (metric, end, slice, K)
    diff[np.isnan(diff)] = 0.0  # inf less inf: no figure, no floor
    least = diff.max(axis=1)
    # No such host reachable (inf): any floor is a bound, and a finite one keeps the
    # figures free of inf - inf.
    floor = np.minimum(
        np.concatenate([far.transpose(0, 2, 1), np.maximum(least, 0.0)], axis=2), FAR
    )
    return floor


__all__ = ["FAR", "Ways", "both_ways", "floors", "nearest", "raise_to_routes", "route_floor"]
