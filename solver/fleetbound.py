"""A lower bound on the optimum of a large fleet, where each app has only a few candidates.

On large fleets the heuristic gives each app a handful of candidate hosts (its
neighbourhood, `solver.hosts.pick_hosts`), so the per-app optimum over them bounds
nothing: a host outside might be cheaper. Here the other hosts of each tier are sorted
by cost per GFLOP and cut into a few slices (`SLICES`; small where hosts are cheap,
`cuts`), and each slice becomes one virtual host whose terms are no dearer than those of
any host it stands for:
- compute: the least cost per GFLOP (among the slice's hosts that are not candidates),
  the least ms per GFLOP and overhead and the most memory (each may come from a
  different device; a bound needs each term low, not one device);
- a route between a device and a slice: its rtt and joules per MB at least the least
  from any host of the slice (two route searches per slice, started from all its hosts
  at once, one per metric: a route's figures are sums over its links, and the least sum
  of each is a bound whichever path the contract picks); the route passes one of the
  device's links, so it is at least, over those links, the link's own figures plus the
  slice's least to its other end, at the link's Mbit/s (a camera whose least-rtt way
  out is its slow link pays that link's time); the slice pays as its greenest sender;
  between two slices, the least over the first one's hosts;
- no migration; each app's limit on segments kept; the SLO: every block on a host and
  every move whose least path exceeds it left out (`fleetpaths.within_slo`: a path to a
  host takes at least half the least rtt from the source, whatever its moves), and
  priced in (Lagrange: the least cost plus a price times the worst-case ms, less the
  price times the SLO).
Transfers between candidate hosts that the heuristic did not route (`upward_only`) get
floors from the links at both ends (`fleetlinks.completed`). Then each app's chain DP
over its candidates and the virtual hosts, with shared capacity relaxed, bounds its own
optimum, and their sum the plan's optimum. (A cascade's stages are enumerated with its
SLO.)

Then each slice's figures to the source, the sink and the candidates get floors by the
triangle inequality (`solver.fleetfloor`): the hosts it stands for are not candidates, so
at least as far from the source as the nearest non-candidate of its slice; and its joules
per MB from the source and the sink are raised to what a least-rtt search from each says
of the contract's routes (`fleetfloor.raise_to_routes`).

How tight: 1.5 to 1.9% under the heuristic's plan on generated fleets of 1,000 to 10,000
devices (2.7 to 3.4% with the SLO priced alone; 3.3 to 4.4% with the least joules per MB
over any path, not the route's; 4.2 to 5.3% with slices of equal counts; 6.5 to 8.4%
before the links were coupled and the floors taken per slice; 11 to 14% without the
floors). The rest: the SLO's price, moves between two virtual hosts at their slices'
least distance, and a slice's least cost per GFLOP sitting with one of its hosts and its
distance floor with another (bench/RESULTS.md, "Solver scale").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from solver.candidates import chain_arrays
from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.fleetfloor import Ways, both_ways, floors, raise_to_routes
from solver.fleetlinks import LinkBounds, Links, completed, coupled, figures
from solver.fleetpaths import Away, cascade_bound, distances, end_ms, relaxed_dp, within_slo
from solver.problem import Problem
from solver.scenario import App

# Virtual hosts per tier, by cost per GFLOP: slices of the tier's hosts, geometric in size
# (`_tier`). More slices bound tighter (each stands for hosts no cheaper than its least)
# and cost a route search and DP columns each.
SLICES = {"cloud": 12, "edge": 6, "device": 3}
CHUNK = 256  # apps per DP pass
# SLO prices tried, in units of the app's least cost per ms of SLO (after the pruning,
# 0.5 bound tighter than 1 on generated fleets: bench/RESULTS.md).
LAMBDAS: tuple[float, ...] = (0.5,)
BUDGET = 32  # relaying devices settled per search from an app's end (`fleetfloor.nearest`)


def cuts(n: int, count: int) -> list[int]:
    """Where `count` slices of `n` hosts by cost per GFLOP end: the k-th at the
    n ** (k / count)-th host. The cheap hosts, which the DP takes, stand in small slices,
    so that a slice's least cost and its distance sit with nearly the same host; the dear
    ones share large slices. (Equal-count slices left 5.3% at 10,000 devices where these
    leave 4.4%: bench/RESULTS.md.)"""
    return sorted({round(n ** (k / count)) for k in range(1, count)} - {0, n})


@dataclass(frozen=True, slots=True)
class _Slices:
    """The virtual hosts of one set of tiers: per slice, the least compute terms and
    sending cost of its hosts and their most memory (nv,), and the least route rtt and
    joules per MB from any of its hosts to every device (nv, n), by route searches
    started from all of them at once."""

    cc: np.ndarray
    wk: np.ndarray
    oc: np.ndarray
    ow: np.ndarray
    memory: np.ndarray
    send: np.ndarray
    rtt: np.ndarray
    jpm: np.ndarray
    members: list[list[int]]  # per slice, its hosts by cost per GFLOP
    costs: list[list[float]]  # and their costs per GFLOP
    cheapest: frozenset[int]  # each slice's hosts that share its least cost
    slice_of: np.ndarray  # (n,): each device's slice, -1 for none
    keys: list[str]  # per slice, its tier and its place in it (`_slice_ways`)
    pair: np.ndarray  # (4, nv, nv): see `Away`


class _Figures(NamedTuple):
    """One app's figures before `fleetlinks.coupled`."""

    v: _Slices  # the slices of its tiers
    cc: np.ndarray  # their costs per GFLOP without its candidates
    at: np.ndarray  # the devices it looks up: source, sink, candidates
    floor: np.ndarray  # their floors (2, nv, len(at))
    sent: np.ndarray  # transfer figures from them to each slice (4, nv, len(at))
    back: np.ndarray  # and from each slice to them
    free: np.ndarray  # (nv, len(at)): where a slice stands for the device itself


class FleetBound:
    """Lower bounds of the apps of one problem: `lower(apps)`."""

    def __init__(self, problem: Problem, fleet: Fleet) -> None:
        self.problem = problem
        self.fleet = fleet
        self.links = LinkBounds.of(fleet)
        self._tiers: dict[str, list[np.ndarray]] = {}
        # A slice's first host -> least rtt, least joules per MB from the slice to each device.
        self._searched: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sets: dict[tuple[str, ...], _Slices] = {}
        # Per metric (rtt, joules per MB): each device's links to devices that relay
        # (more than one link), and the single-link devices' only link.
        only = self.links.only
        index = fleet.index
        rtt: list[list[tuple[int, float]]] = [[] for _ in range(fleet.n)]
        jpm: list[list[tuple[int, float]]] = [[] for _ in range(fleet.n)]
        for lk in fleet.links:
            a, b = index[lk.a], index[lk.b]
            if a not in only:
                rtt[b].append((a, lk.rtt_ms))
                jpm[b].append((a, lk.j_per_mb))
            if b not in only:
                rtt[a].append((b, lk.rtt_ms))
                jpm[a].append((b, lk.j_per_mb))
        self._adj = (rtt, jpm)
        self._ways: tuple[list[str], tuple[Ways, Ways]] | None = None
        self._links = Links.of(fleet)
        self._smax = max(
            max(m.input_mb, *(layer.out_mb for layer in m.layers)) for m in problem.scenario.models
        )
        links = fleet.links
        self._leaves = (
            {x: (nb, links[k].rtt_ms) for x, (nb, k) in only.items()},
            {x: (nb, links[k].j_per_mb) for x, (nb, k) in only.items()},
        )

    def _tier(self, tier: str) -> list[np.ndarray]:
        """One tier's hosts by cost per GFLOP, in slices, each with its route searches."""
        got = self._tiers.get(tier)
        if got is None:
            f = self.fleet
            hosts = np.array(f.hosts_of((tier,)), dtype=np.int64)
            hosts = hosts[np.argsort(f.cc[hosts], kind="stable")]
            cut = cuts(len(hosts), SLICES.get(tier, 4))
            got = self._tiers[tier] = [p for p in np.split(hosts, cut) if len(p)]
            for p in got:
                self._searched[int(p[0])] = (
                    distances(self._adj[0], self._leaves[0], p),
                    distances(self._adj[1], self._leaves[1], p),
                )
        return got

    def _slices(self, tiers: tuple[str, ...]) -> _Slices:
        """The virtual hosts of a set of tiers: the slices of each."""
        key = tuple(sorted(tiers))
        got = self._sets.get(key)
        if got is None:
            f = self.fleet
            parts = [p for t in key for p in self._tier(t)]
            slice_of = np.full(f.n, -1, dtype=np.int64)
            for j, p in enumerate(parts):
                slice_of[p] = j
            got = self._sets[key] = _Slices(
                cc=np.array([f.cc[p].min() for p in parts]),
                wk=np.array([f.wk[p].min() for p in parts]),
                oc=np.array([f.oc[p].min() for p in parts]),
                ow=np.array([f.ow[p].min() for p in parts]),
                memory=np.array([f.memory[p].max() for p in parts]),
                send=np.array([f.send[p].min() for p in parts]),
                rtt=np.array([self._searched[int(p[0])][0] for p in parts]),
                jpm=np.array([self._searched[int(p[0])][1] for p in parts]),
                members=[p.tolist() for p in parts],
                costs=[f.cc[p].tolist() for p in parts],
                cheapest=frozenset(int(h) for p in parts for h in p if f.cc[h] <= f.cc[p[0]]),
                slice_of=slice_of,
                keys=[f"{t}:{j}" for t in key for j in range(len(self._tier(t)))],
                pair=np.zeros(0),
            )
            got = self._sets[key] = replace(got, pair=self._pairs(got))
        return got

    def _pairs(self, v: _Slices) -> np.ndarray:
        """Transfer figures between slices: the least rtt and joules per MB from a host
        of one to a host of the other, the sender's least sending cost, its hosts'
        fastest link; inf from a slice to itself (staying is not a move)."""
        f, lb = self.fleet, self.links
        nv = len(v.cc)
        rtt, jpm = np.full((nv, nv), INF), np.full((nv, nv), INF)
        mbps = np.array([lb.mbps[m].max() for m in v.members])
        for j, m in enumerate(v.members):
            rtt[j] = v.rtt[:, m].min(axis=1)
            jpm[j] = v.jpm[:, m].min(axis=1)
        out = np.array(figures(f, v.send[:, None], rtt, jpm, mbps[:, None]))
        out[:, np.arange(nv), np.arange(nv)] = INF
        return out

    def elsewhere(self, app: App, routes: CandidateRoutes) -> Away:
        """The virtual hosts of `app` (`elsewhere_all` of one app)."""
        return self.elsewhere_all([(app, routes)])[0]

    def elsewhere_all(self, apps: Sequence[tuple[App, CandidateRoutes]]) -> list[Away]:
        """The virtual hosts of each app: each slice of its allowed tiers stands for its
        hosts that are not candidates (the least cost per GFLOP among them). A route
        between a device and a slice is at least the least rtt and joules per MB from any
        of the slice's hosts, and at least what the device's own links allow
        (`fleetlinks.coupled`, for a chunk of apps at once); from a device of the slice,
        at least the figures of its own links (a candidate is not a host the slice stands
        for), or none from the source or sink if they are not candidates (it may be the
        host itself)."""
        out = []
        for c in range(0, len(apps), CHUNK):
            out.extend(self._elsewhere_chunk(apps[c : c + CHUNK]))
        return out

    def _elsewhere_chunk(self, apps: Sequence[tuple[App, CandidateRoutes]]) -> list[Away]:
        parts = [self._figures_of(app, routes) for app, routes in apps]
        by_set: dict[int, list[_Figures]] = {}
        for part in parts:
            by_set.setdefault(id(part.v), []).append(part)
        for members in by_set.values():
            self._couple(members)
        out = []
        for v, cc, _, _, sent, back, free in parts:
            sent[:, free] = 0.0
            back[:, free] = 0.0
            out.append(
                Away(
                    cc=cc,
                    wk=v.wk,
                    oc=v.oc,
                    ow=v.ow,
                    memory=v.memory,
                    inbound=sent[:, :, 0],
                    outbound=back[:, :, 1],
                    to=sent[:, :, 2:],
                    back=back[:, :, 2:],
                    pair=v.pair,
                )
            )
        return out

    def _couple(self, parts: list[_Figures]) -> None:
        """`fleetlinks.coupled` over the devices of several apps that share one set of
        slices, at once (their columns side by side), written back to each."""
        v = parts[0].v
        at = np.concatenate([p.at for p in parts])
        floor, sent, back = (
            np.concatenate([getattr(p, name) for p in parts], axis=2)
            for name in ("floor", "sent", "back")
        )
        coupled(self._links, self.fleet, self._smax, at, (v.rtt, v.jpm, v.send), floor, sent, back)
        start = 0
        for p in parts:
            end = start + len(p.at)
            p.sent[...] = sent[:, :, start:end]
            p.back[...] = back[:, :, start:end]
            start = end

    def _figures_of(self, app: App, routes: CandidateRoutes) -> _Figures:
        """One app's slices, their cost per GFLOP without its candidates, the devices it
        looks up (source, sink, candidates), their floors and transfer figures to and
        from each slice before `coupled`, and which of them a slice stands for."""
        f, lb = self.fleet, self.links
        v = self._slices(app.allowed_tiers)
        cand = set(routes.hosts)
        src, sink = f.index[app.source], f.index[app.sink_id]
        k = np.array(routes.hosts, dtype=np.int64)
        cc = v.cc
        if cand.intersection(v.cheapest):
            cc = np.array(
                [
                    next((c for h, c in zip(m, cs, strict=True) if h not in cand), INF)
                    for m, cs in zip(v.members, v.costs, strict=True)
                ]
            )
        nv = len(cc)

        # One look-up for the source, the sink and the candidates; figures as the sender
        # (source, candidates) and as the slice sending (to the sink, back).
        at = np.concatenate((np.array([src, sink], dtype=np.int64), k))
        rtt, jpm = v.rtt[:, at], v.jpm[:, at]
        inside = v.slice_of[at][None, :] == np.arange(nv)[:, None]
        own = np.ones(len(at), dtype=bool)  # the candidates, and the source or sink if one
        own[:2] = (src in cand, sink in cand)
        first = inside & own
        rtt = np.where(first, lb.rtt[at], rtt)
        jpm = np.where(first, lb.jpm[at], jpm)
        keys, ways = self._slice_ways()
        floor = floors(f, ways, keys, app, routes, v.keys, BUDGET)
        raise_to_routes(floor, ways, keys, v.keys, cand, (src, sink), v.jpm, BUDGET)
        rtt, jpm = np.maximum(rtt, floor[0]), np.maximum(jpm, floor[1])
        sent = np.array(figures(f, f.send[at], rtt, jpm, lb.mbps[at]))
        # The slice sending: the same times, its own sending cost.
        back = sent.copy()
        back[0] = jpm * v.send[:, None] + f.w.latency * sent[2]
        return _Figures(v, cc, at, floor, sent, back, inside & ~own)

    def ready(self) -> FleetBound:
        """Itself, with every tier's slices and their searches done: what a forked child
        and its parent then share instead of each doing them."""
        self._slice_ways()
        return self

    def _slice_ways(self) -> tuple[list[str], tuple[Ways, Ways]]:
        """Every device's slice key, and the fleet's links for `fleetfloor.nearest` with
        the single-link devices grouped by it."""
        if self._ways is None:
            keys: list[str] = [str(t) for t in self.fleet.tiers]
            for t in sorted(set(keys)):
                for j, p in enumerate(self._tier(t)):
                    for h in p.tolist():
                        keys[h] = f"{t}:{j}"
            self._ways = (keys, both_ways(self.fleet, keys))
        return self._ways

    def completed(self, routes: CandidateRoutes) -> CandidateRoutes:
        """`routes` with every transfer between candidate hosts that was not routed (the
        heuristic leaves out downward ones and those between two end devices) given
        floors from the links at its ends (`fleetlinks.completed`): allowing a transfer
        that may not exist only lowers the bound."""
        return completed(self.fleet, self.links, self._links, routes)

    def lower(self, apps: Sequence[tuple[App, CandidateRoutes]]) -> float:
        """The sum of the apps' lower bounds (inf when one of them has no placement)."""
        each = self.each(apps)
        total = 0.0
        # Cascades first, then the rest, each in the apps' order: as it always summed.
        for cascade in (True, False):
            for app, _ in apps:
                if (app.cascade is not None) == cascade:
                    total += each[app.id]
        return total

    def each(self, apps: Sequence[tuple[App, CandidateRoutes]]) -> dict[str, float]:
        """Each app's lower bound, by app id (inf where it has no placement)."""
        best: dict[str, float] = {}
        groups: dict[str, list[tuple[App, CandidateRoutes, Away]]] = {}
        completed = [(app, self.completed(routes)) for app, routes in apps]
        for (app, full), away in zip(completed, self.elsewhere_all(completed), strict=True):
            if app.cascade is not None:
                best[app.id] = cascade_bound(self.problem, self.fleet, app, full, away)
                continue
            for m in self.problem.model_options(app):
                groups.setdefault(m, []).append((app, full, away))
        for m, members in groups.items():
            for (app, _, _), value in zip(members, self._chains(m, members), strict=True):
                best[app.id] = min(best.get(app.id, INF), float(value))
        return {app.id: best.get(app.id, INF) for app, _ in apps}

    def _chains(
        self, model_id: str, members: list[tuple[App, CandidateRoutes, Away]]
    ) -> np.ndarray:
        """Each member's bound on running `model_id`: the chain DP of
        `solver.candidates` over its candidates and its virtual hosts, a few hundred apps
        at a time (their move arrays are apps x blocks x hosts squared)."""
        out = [self._chunk(model_id, members[i : i + CHUNK]) for i in range(0, len(members), CHUNK)]
        return np.concatenate(out) if out else np.zeros(0)

    def _chunk(self, model_id: str, members: list[tuple[App, CandidateRoutes, Away]]) -> np.ndarray:
        f = self.fleet
        apps = [a for a, _, _ in members]
        routes = [r for _, r, _ in members]
        ch = chain_arrays(self.problem, f, apps, model_id, routes, moves=False)
        na, n, kmax = ch.u.shape
        nv = max(len(away.cc) for _, _, away in members)
        width = kmax + nv
        u = np.empty((na, n, width))
        u[:, :, :kmax] = ch.u
        uw = np.empty((na, n, width))
        uw[:, :, :kmax] = ch.uw
        # A move's cost per MB (c1) and fixed cost (c0: the transfer's, and the overhead
        # of the segment it starts on the receiver); c0 inf where there is no move. The
        # same for its worst-case ms (w1, w0).
        c1 = np.zeros((na, width, width))
        c0 = np.full((na, width, width), INF)
        w1 = np.zeros((na, width, width))
        w0 = np.full((na, width, width), INF)
        for a, r in enumerate(routes):
            k = len(r.hosts)
            c1[a, :k, :k] = np.where(r.ok, r.c1, 0.0)
            w1[a, :k, :k] = np.where(r.ok, r.w1, 0.0)
            h = np.array(r.hosts, dtype=np.int64)
            c0[a, :k, :k] = np.where(r.ok, r.c0 + f.oc[h][None, :], INF)
            w0[a, :k, :k] = np.where(r.ok, r.w0 + f.ow[h][None, :], INF)
        if nv:
            self._virtual_columns(model_id, members, u, uw, c1, c0, w1, w0, kmax)
        # No route has inf figures; inf times a probability of 0 would be nan.
        for per_mb, fixed in ((c1, c0), (w1, w0)):
            bad = ~np.isfinite(per_mb)
            per_mb[bad] = 0.0
            fixed[bad] = INF
        s = self.problem.cost.shapes[model_id]
        cont = np.array(s.cont)
        out = np.array([layer.out_mb for layer in s.model.layers])
        rate = np.array([a.rate_rps for a in apps])[:, None]
        co, cn = rate * (cont * out)[None, : n - 1], rate * cont[None, : n - 1]
        stages = np.array([min(a.max_stages, n) for a in apps])
        best = relaxed_dp(u, [(co, c1), (cn, c0)], stages)
        slo = np.array([a.slo_ms if a.slo_ms is not None else INF for a in apps])
        rows = np.flatnonzero(np.isfinite(slo) & np.isfinite(best) & (best > 0.0))
        if rows.size == 0:
            return best
        # The SLO: what no path within it takes is left out (`within_slo`), and it is
        # priced in (Lagrange): for any lam >= 0, the least cost + lam * worst ms minus
        # lam * SLO is at most the cost of every path that meets it.
        scale = best[rows] / slo[rows]
        ones = np.ones((rows.size, n - 1))
        times = [(out[None, : n - 1] * ones, w1[rows]), (ones, w0[rows])]
        ends = end_ms([(routes[a], members[a][2]) for a in rows.tolist()], kmax, width)
        gate = within_slo(uw[rows], times, slo[rows], ends)
        costs = [(co[rows], c1[rows]), (cn[rows], c0[rows])]
        for price in LAMBDAS:
            lam = (price * scale)[:, None]
            priced = costs + [(lam * c, m) for c, m in times]
            val = relaxed_dp(u[rows] + lam[:, :, None] * uw[rows], priced, stages[rows], gate)
            best[rows] = np.maximum(best[rows], val - price * scale * slo[rows])
        return best

    def _virtual_columns(
        self,
        model_id: str,
        members: list[tuple[App, CandidateRoutes, Away]],
        u: np.ndarray,
        uw: np.ndarray,
        c1: np.ndarray,
        c0: np.ndarray,
        w1: np.ndarray,
        w0: np.ndarray,
        kmax: int,
    ) -> None:
        """Fill the virtual hosts' block costs (columns kmax.. of u) and the figures of
        moves to, from and between them (of c1 and c0), the terms of
        `solver.candidates.chain_arrays` on their figures, for every app at once."""
        s = self.problem.cost.shapes[model_id]
        m = s.model
        na, nv = len(members), u.shape[2] - kmax
        f = self.fleet
        g = np.array([layer.gflops + s.exit_gflops[i] for i, layer in enumerate(m.layers)])
        par = np.array([layer.params_mb + s.exit_params_mb[i] for i, layer in enumerate(m.layers)])
        reach, cont = np.array(s.reach), np.array(s.cont)
        emass = reach * np.array(s.exit_prob)
        res = m.layers[-1].out_mb
        # Per app and virtual host: cc, oc, memory, inbound c1, c0, outbound c1, c0;
        # absent virtual hosts get no memory (nothing fits).
        scal = np.zeros((na, nv, 7))
        scal[:, :, 2] = -1.0
        wscal = np.zeros((na, nv, 6))  # wk, ow, inbound w1, w0, outbound w1, w0
        rate = np.array([a.rate_rps for a, _, _ in members])
        for a, (_, routes, v) in enumerate(members):
            k, j = len(routes.hosts), len(v.cc)
            hosts = np.array(routes.hosts, dtype=np.int64)
            scal[a, :j] = np.column_stack([v.cc, v.oc, v.memory, *v.inbound[:2], *v.outbound[:2]])
            wscal[a, :j] = np.column_stack([v.wk, v.ow, *v.inbound[2:], *v.outbound[2:]])
            for per_mb, fixed, x, over, over_k in (
                (c1, c0, 0, v.oc, f.oc[hosts]),
                (w1, w0, 2, v.ow, f.ow[hosts]),
            ):
                per_mb[a, :k, kmax : kmax + j] = v.to[x].T
                fixed[a, :k, kmax : kmax + j] = v.to[x + 1].T + over[None, :]
                per_mb[a, kmax : kmax + j, :k] = v.back[x]
                fixed[a, kmax : kmax + j, :k] = v.back[x + 1] + over_k[None, :]
                per_mb[a, kmax : kmax + j, kmax : kmax + j] = v.pair[x]
                fixed[a, kmax : kmax + j, kmax : kmax + j] = v.pair[x + 1] + over[None, :]
        cc, oc, memory = scal[:, :, 0], scal[:, :, 1], scal[:, :, 2]
        out_cost = res * scal[:, :, 5] + scal[:, :, 6]  # (na, nv)
        cost = (reach * g)[None, None, :] * cc[:, :, None] + emass * out_cost[:, :, None]
        cost[:, :, 0] += m.input_mb * scal[:, :, 3] + scal[:, :, 4] + oc
        cost[:, :, -1] += cont[-1] * out_cost
        fits = par[None, None, :] <= memory[:, :, None]
        block = np.where(fits, rate[:, None, None] * cost, INF)  # (na, nv, n)
        u[:, :, kmax:] = block.transpose(0, 2, 1)
        worst = g[None, None, :] * wscal[:, :, 0, None]
        worst[:, :, 0] += m.input_mb * wscal[:, :, 2] + wscal[:, :, 3] + wscal[:, :, 1]
        worst[:, :, -1] += res * wscal[:, :, 4] + wscal[:, :, 5]
        uw[:, :, kmax:] = np.where(fits, worst, INF).transpose(0, 2, 1)


__all__ = ["FleetBound"]
