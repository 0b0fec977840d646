"""A lower bound on the optimum of a large fleet, where each app has only a few candidates.

On large fleets the heuristic gives each app a handful of candidate hosts (its
neighbourhood, `solver.candidates.pick_hosts`), so the per-app optimum over them bounds
nothing: a host outside might be cheaper. Here every other host of the app's allowed
tiers is folded into one virtual host, "elsewhere", whose terms are no dearer than those
of any host it stands for:
- compute: the least cost per GFLOP, the least ms per GFLOP and the most memory among
  them (each may come from a different device; a bound needs each term low, not one
  device);
- a transfer between a candidate host k and elsewhere crosses a link at k: its rtt is at
  least k's shortest link's, its joules per MB at least k's least, its Mbit/s at most
  k's fastest (the input from a source with a single link crosses that link and one of
  its neighbour's); elsewhere pays as the greenest sender among them;
- no migration, and two consecutive segments elsewhere count as one.
Transfers between candidate hosts that the heuristic did not route (`upward_only`) get
the same link bounds (the sender's links). Then each app's chain DP over its candidates
and the virtual hosts, with the SLO and shared capacity relaxed, bounds its own optimum,
and their sum the plan's optimum. (A cascade's stages are enumerated with its SLO.)

How tight: the virtual hosts are the weak part. Clouds far along the backbone are often
greener than the app's neighbourhood, and their transfers are bounded by the first links
and the source's searched radius only, so the bound lets every app run its tail there
nearly for free. On generated fleets it is about 20% under the heuristic's plan, of
which about 1% is real (the heuristic does not look at far clouds; the exact optimum
over the 20 greenest clouds as well is that much lower).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from solver.candidates import chain_arrays, chain_dp
from solver.fastcost import INF, CandidateRoutes, Fleet
from solver.problem import Problem
from solver.routes import transfer_ms
from solver.scenario import App


@dataclass(frozen=True, slots=True)
class LinkBounds:
    """Per device, over its links: least rtt, least joules per MB, most Mbit/s (inf, inf,
    0 for a device with no link), and its only neighbour and link for a single link."""

    rtt: np.ndarray
    jpm: np.ndarray
    mbps: np.ndarray
    only: dict[int, tuple[int, int]]

    @staticmethod
    def of(fleet: Fleet) -> LinkBounds:
        index = fleet.index
        a = np.array([index[lk.a] for lk in fleet.links], dtype=np.int64)
        b = np.array([index[lk.b] for lk in fleet.links], dtype=np.int64)
        figures = np.array([(lk.rtt_ms, lk.j_per_mb, lk.mbps) for lk in fleet.links]).reshape(-1, 3)
        ends = np.concatenate([a, b])
        rtt = np.full(fleet.n, INF)
        jpm = np.full(fleet.n, INF)
        mbps = np.zeros(fleet.n)
        np.minimum.at(rtt, ends, np.tile(figures[:, 0], 2))
        np.minimum.at(jpm, ends, np.tile(figures[:, 1], 2))
        np.maximum.at(mbps, ends, np.tile(figures[:, 2], 2))
        degree = np.bincount(ends, minlength=fleet.n)
        only: dict[int, tuple[int, int]] = {}
        for k in np.flatnonzero((degree[a] == 1) | (degree[b] == 1)).tolist():
            x, y = int(a[k]), int(b[k])
            if degree[x] == 1:
                only[x] = (y, k)
            if degree[y] == 1:
                only[y] = (x, k)
        return LinkBounds(rtt, jpm, mbps, only)


def _figures(fleet: Fleet, send: Any, rtt: Any, jpm: Any, mbps: Any) -> tuple[Any, Any, Any, Any]:
    """(c1, c0, w1, w0) of `fastcost.CandidateRoutes` for a route with these figures (floats
    or arrays; a device without links has inf rtt and no Mbit/s: not finite)."""
    wl = fleet.w.latency
    rtt, mbps = np.asarray(rtt, dtype=float), np.asarray(mbps, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        fixed_ms = transfer_ms(rtt, mbps, 0.0)
        ms_per_mb = transfer_ms(rtt, mbps, 1.0) - fixed_ms
        return jpm * send + wl * ms_per_mb, wl * fixed_ms, ms_per_mb, fixed_ms


@dataclass(frozen=True, slots=True)
class _Elsewhere:
    """One virtual host of an app: the least compute terms of the hosts it stands for,
    and bounds on transfers to and from them, as `CandidateRoutes` figures."""

    cc: float
    wk: float
    oc: float  # a segment's overhead, weighted
    ow: float  # its ms
    memory: float
    inbound: tuple[float, float, float, float]  # source -> here
    outbound: tuple[float, float, float, float]  # here -> sink
    to: np.ndarray  # (4, K): candidate host -> here
    back: np.ndarray  # (4, K): here -> candidate host


class FleetBound:
    """Lower bounds of the apps of one problem: `lower(apps)`."""

    def __init__(self, problem: Problem, fleet: Fleet) -> None:
        self.problem = problem
        self.fleet = fleet
        self.links = LinkBounds.of(fleet)
        self._by_tiers: dict[tuple[str, ...], tuple[np.ndarray, ...]] = {}
        # Search origin -> the rtt it knows by device index, and its radius.
        self._dist: dict[str, tuple[dict[int, float], float]] = {}

    def _sorted(self, tiers: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        """The hosts of these tiers by cost per GFLOP, ms per GFLOP, overhead cost,
        overhead ms, memory (most first) and sending cost, so that the best outside a
        small set is found in a few steps."""
        key = tuple(sorted(tiers))
        got = self._by_tiers.get(key)
        if got is None:
            f = self.fleet
            hosts = np.array(f.hosts_of(tiers), dtype=np.int64)
            got = tuple(
                hosts[np.argsort(v[hosts], kind="stable")]
                for v in (f.cc, f.wk, f.oc, f.ow, -f.memory, f.send)
            )
            self._by_tiers[key] = got
        return got

    def _first_hops(
        self, device: int, candidates: set[int], allowed: set[str]
    ) -> tuple[float, float]:
        """(joules per MB, Mbit/s) bounds of a route between `device` and a host outside
        `candidates`: it crosses one of the device's links, and, when its only neighbour
        cannot itself be that host, one of the neighbour's too."""
        lb, f = self.links, self.fleet
        only = lb.only.get(device)
        if only is not None:
            nb, k = only
            if nb in candidates or f.tiers[nb] not in allowed:
                lk = f.links[k]
                return lk.j_per_mb + lb.jpm[nb], min(lk.mbps, lb.mbps[nb])
        return float(lb.jpm[device]), float(lb.mbps[device])

    def elsewhere(self, app: App, routes: CandidateRoutes) -> list[_Elsewhere]:
        """The virtual hosts of `app`: the hosts its source's route search has already
        reached (near) and those it has not (far, at least its radius away), each
        standing for every allowed host of its kind that is not a candidate."""
        f = self.fleet
        cand = set(routes.hosts)
        allowed: set[str] = set(app.allowed_tiers)
        dist, offset, radius = self._known(app.source)
        near = [h for h in dist if h not in cand and f.tiers[h] in allowed]
        out = []
        if near:
            hs = np.array(near, dtype=np.int64)
            lo, hi = float(min(dist[h] for h in near)), float(max(dist[h] for h in near))
            out.append(self._virtual(app, routes, hs, (lo, hi), dist, offset))
        orders = self._sorted(app.allowed_tiers)
        skip = cand | set(near)
        if len(orders[0]) > len(skip):
            picks = [
                int(next((h for h in o if int(h) not in skip and int(h) not in dist), -1))
                for o in orders
            ]
            if picks[0] >= 0:
                out.append(self._virtual(app, routes, np.array(picks), (radius, INF), dist, offset))
        return out

    def _known(self, source: str) -> tuple[dict[int, float], float, float]:
        """`RouteTable.known_rtt` by device index, built once per search origin (the
        cameras of one edge box share their edge's search)."""
        table = self.problem.cost.routes
        stub = self.links.only.get(self.fleet.index[source])
        origin = self.fleet.ids[stub[0]] if stub is not None else source
        hit = self._dist.get(origin)
        if hit is None:
            found, settled, _, radius = table.known_rtt(origin)
            if found != origin:  # the origin has a single link itself: not shared
                _, own, offset, radius = table.known_rtt(source)
                return self._index(own), offset, radius
            hit = self._dist[origin] = (self._index(settled), radius)
        offset = float(self.fleet.links[stub[1]].rtt_ms) if stub is not None else 0.0
        return hit[0], offset, hit[1]

    def _index(self, settled: dict[str, float]) -> dict[int, float]:
        index = self.fleet.index
        return {index[d]: r for d, r in settled.items()}

    def _virtual(
        self,
        app: App,
        routes: CandidateRoutes,
        hosts: np.ndarray,
        span: tuple[float, float],
        dist: dict[int, float],
        offset: float,
    ) -> _Elsewhere:
        """A virtual host for `hosts` (or, for the far one, the best of each kind), whose
        route rtt from the search origin lies in `span`."""
        f, lb = self.fleet, self.links
        lo, hi = span
        cand = set(routes.hosts)
        allowed: set[str] = set(app.allowed_tiers)
        send = float(f.send[hosts].min())

        def rtt_to(x: int) -> float:
            """Least route rtt between device x and any host whose rtt from the origin
            is in span (the triangle inequality), and never less than x's shortest link."""
            d = dist.get(x)
            gap = 0.0 if d is None else max(lo - d, d - hi, 0.0)
            return max(gap, float(lb.rtt[x]))

        src, sink = f.index[app.source], f.index[app.sink_id]
        free = (0.0, 0.0, 0.0, 0.0)  # the source (sink) itself is one of these hosts
        if src in set(hosts.tolist()):
            inbound = free
        else:
            # From the source: offset plus at least lo (its routes are its origin's).
            jpm, mbps = self._first_hops(src, cand, allowed)
            inbound = _figures(f, float(f.send[src]), max(offset + lo, rtt_to(src)), jpm, mbps)
        if sink in set(hosts.tolist()):
            outbound = free
        else:
            jpm, mbps = self._first_hops(sink, cand, allowed)
            rtt = max(offset + lo, rtt_to(sink)) if sink == src else rtt_to(sink)
            outbound = _figures(f, send, rtt, jpm, mbps)
        k = np.array(routes.hosts, dtype=np.int64)
        d = np.array([dist.get(h, np.nan) for h in routes.hosts])
        with np.errstate(invalid="ignore"):
            gap = np.where(np.isnan(d), 0.0, np.maximum(np.maximum(lo - d, d - hi), 0.0))
        rtt_k = np.maximum(gap, lb.rtt[k])
        to = np.array(_figures(f, f.send[k], rtt_k, lb.jpm[k], lb.mbps[k]))
        back = np.array(_figures(f, send, rtt_k, lb.jpm[k], lb.mbps[k]))
        return _Elsewhere(
            cc=float(f.cc[hosts].min()),
            wk=float(f.wk[hosts].min()),
            oc=float(f.oc[hosts].min()),
            ow=float(f.ow[hosts].min()),
            memory=float(f.memory[hosts].max()),
            inbound=inbound,
            outbound=outbound,
            to=to,
            back=back,
        )

    def completed(self, routes: CandidateRoutes) -> CandidateRoutes:
        """`routes` with every transfer between candidate hosts that was not routed (the
        heuristic leaves out downward ones and those between two end devices) given its
        link bounds: allowing a transfer that may not exist only lowers the bound."""
        f, lb = self.fleet, self.links
        h = np.array(routes.hosts, dtype=np.int64)
        linked = np.isfinite(lb.rtt[h])
        fill = ~routes.ok & linked[:, None] & linked[None, :]
        if not fill.any():
            return routes
        c1, c0, w1, w0 = _figures(f, f.send[h], lb.rtt[h], lb.jpm[h], lb.mbps[h])
        return replace(
            routes,
            c1=np.where(fill, c1[:, None], routes.c1),
            c0=np.where(fill, c0[:, None], routes.c0),
            w1=np.where(fill, w1[:, None], routes.w1),
            w0=np.where(fill, w0[:, None], routes.w0),
            ok=routes.ok | fill,
        )

    def lower(self, apps: Sequence[tuple[App, CandidateRoutes]]) -> float:
        """The sum of the apps' lower bounds (inf when one of them has no placement)."""
        total = 0.0
        groups: dict[str, list[tuple[App, CandidateRoutes, list[_Elsewhere]]]] = {}
        for app, routes in apps:
            full = self.completed(routes)
            away = self.elsewhere(app, full)
            if app.cascade is not None:
                total += self._cascade(app, full, away)
                continue
            for m in self.problem.model_options(app):
                groups.setdefault(m, []).append((app, full, away))
        best: dict[str, float] = {}
        for m, members in groups.items():
            for (app, _, _), value in zip(members, self._chains(m, members), strict=True):
                best[app.id] = min(best.get(app.id, INF), float(value))
        for app, _ in apps:
            if app.cascade is None:
                total += best.get(app.id, INF)
        return total

    def _chains(
        self, model_id: str, members: list[tuple[App, CandidateRoutes, list[_Elsewhere]]]
    ) -> np.ndarray:
        """Each member's bound on running `model_id`: the chain DP of
        `solver.candidates` over its candidates and its virtual hosts."""
        apps = [a for a, _, _ in members]
        ch = chain_arrays(self.problem, self.fleet, apps, model_id, [r for _, r, _ in members])
        na, n, kmax = ch.u.shape
        nv = max(len(away) for _, _, away in members)
        width = kmax + nv
        u = np.full((na, n, width), INF)
        u[:, :, :kmax] = ch.u
        t = np.full((na, max(n - 1, 0), width, width), INF)
        t[:, :, :kmax, :kmax] = ch.t
        if nv:
            self._virtual_columns(model_id, members, u, t, kmax, nv)
        # The SLO relaxed (no Lagrangian search): one DP pass, a bound all the same; the
        # worst-case arrays are then unused (zeros).
        ext = replace(ch, u=u, uw=np.zeros_like(u), t=t, tw=np.zeros_like(t))
        return chain_dp(ext, np.zeros(na), np.arange(na))[0]

    def _virtual_columns(
        self,
        model_id: str,
        members: list[tuple[App, CandidateRoutes, list[_Elsewhere]]],
        u: np.ndarray,
        t: np.ndarray,
        kmax: int,
        nv: int,
    ) -> None:
        """Fill the virtual hosts' block and move costs (columns kmax.. of u and t), the
        terms of `solver.candidates.chain_arrays` on their figures, for every app at once."""
        s = self.problem.cost.shapes[model_id]
        m = s.model
        n = s.n
        na = len(members)
        f = self.fleet
        g = np.array([layer.gflops + s.exit_gflops[i] for i, layer in enumerate(m.layers)])
        par = np.array([layer.params_mb + s.exit_params_mb[i] for i, layer in enumerate(m.layers)])
        out = np.array([layer.out_mb for layer in m.layers])
        reach, cont = np.array(s.reach), np.array(s.cont)
        emass = reach * np.array(s.exit_prob)
        res = m.layers[-1].out_mb
        # Per app and virtual host: cc, oc, memory, inbound c1, c0, outbound c1, c0;
        # absent virtual hosts get no memory (nothing fits).
        scal = np.zeros((na, nv, 7))
        scal[:, :, 2] = -1.0
        to = np.full((na, nv, 2, kmax), np.nan)  # c1, c0 of candidate -> virtual
        back = np.full((na, nv, 2, kmax), np.nan)  # and virtual -> candidate
        host_oc = np.zeros((na, kmax))
        rate = np.array([a.rate_rps for a, _, _ in members])
        for a, (_, routes, away) in enumerate(members):
            k = len(routes.hosts)
            host_oc[a, :k] = f.oc[np.array(routes.hosts, dtype=np.int64)]
            for j, v in enumerate(away):
                scal[a, j] = (v.cc, v.oc, v.memory, *v.inbound[:2], *v.outbound[:2])
                to[a, j, :, :k] = v.to[:2]
                back[a, j, :, :k] = v.back[:2]
        cc, oc, memory = scal[:, :, 0], scal[:, :, 1], scal[:, :, 2]
        out_cost = res * scal[:, :, 5] + scal[:, :, 6]  # (na, nv)
        cost = (reach * g)[None, None, :] * cc[:, :, None] + emass * out_cost[:, :, None]
        cost[:, :, 0] += m.input_mb * scal[:, :, 3] + scal[:, :, 4] + oc
        cost[:, :, -1] += cont[-1] * out_cost
        fits = par[None, None, :] <= memory[:, :, None]
        block = np.where(fits, rate[:, None, None] * cost, INF)  # (na, nv, n)
        u[:, :, kmax:] = block.transpose(0, 2, 1)
        if n == 1:
            return
        co, cn = (cont * out)[: n - 1], cont[: n - 1]
        r = rate[:, None, None, None]
        with np.errstate(invalid="ignore"):
            # A move starts a segment on the receiving host: its overhead.
            into = r * (
                co[None, None, :, None] * to[:, :, None, 0]
                + cn[None, None, :, None] * (to[:, :, None, 1] + oc[:, :, None, None])
            )  # (na, nv, n-1, kmax)
            away_from = r * (
                co[None, None, :, None] * back[:, :, None, 0]
                + cn[None, None, :, None] * (back[:, :, None, 1] + host_oc[:, None, None, :])
            )
        into = np.where(np.isfinite(into), into, INF)
        away_from = np.where(np.isfinite(away_from), away_from, INF)
        for j in range(nv):
            t[:, :, :kmax, kmax + j] = into[:, j]
            t[:, :, kmax + j, :kmax] = away_from[:, j]

    def _cascade(self, app: App, routes: CandidateRoutes, away: list[_Elsewhere]) -> float:
        """Least objective over every combination of stage hosts, virtual ones included,
        whose worst case meets the SLO (exact enumeration, as `cascade_options`)."""
        assert app.cascade is not None
        f, cm = self.fleet, self.problem.cost
        hosts = np.array(routes.hosts, dtype=np.int64)
        reach = cm.cascade_reach(app)
        last = len(app.cascade) - 1

        def column(values: np.ndarray, name: str) -> np.ndarray:
            return np.concatenate([values, [getattr(v, name) for v in away]])

        def route(side: str, j: int) -> np.ndarray:
            name = ("c1", "c0", "w1", "w0")[j]
            values = getattr(routes, f"{side}_{name}")
            figs = [(v.inbound if side == "in" else v.outbound)[j] for v in away]
            return np.concatenate([values, figs])

        cc, wk = column(f.cc[hosts], "cc"), column(f.wk[hosts], "wk")
        oc, ow = column(f.oc[hosts], "oc"), column(f.ow[hosts], "ow")
        mem = column(f.memory[hosts], "memory")
        ic1, ic0, iw1, iw0 = (route("in", j) for j in range(4))
        oc1, oc0, ow1, ow0 = (route("out", j) for j in range(4))
        in_ok = np.concatenate([routes.in_ok, np.ones(len(away), dtype=bool)])
        out_ok = np.concatenate([routes.out_ok, np.ones(len(away), dtype=bool)])
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


__all__ = ["FleetBound", "LinkBounds"]
