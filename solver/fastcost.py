"""The contract's cost model as arrays, for solvers that score thousands of placements.

`solver.costs` builds one small `Cost` per term, which is right for the evaluator and the
exact model but too slow to score every candidate of 5,000 apps. The same formulas are
factored here into per-device coefficients (`Fleet`), per-app route matrices over a small
candidate device set (`CandidateRoutes`), and an exact per-placement scorer (`score`) that
adds a placement segment by segment (`solver.held` books the apps a solve holds fixed).
`tests/solver/test_fastcost.py` checks them against `solver.costs` to 1e-9 relative.

Resources are numbered once per problem: compute of device d is `d`, its memory `D + d`,
its battery power `2D + d`, and link k is `3D + k` (D devices). Usage is in the unit of
each limit: utilization, MB, watts, utilization.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from solver.costs import ModelShape, cost_per_busy_s, cost_per_joule_sent, embodied_g_per_s
from solver.migration import Migration
from solver.plan import Placement
from solver.problem import Problem
from solver.routes import Route, transfer_ms
from solver.scenario import App, Device

INF = float("inf")
_RTT, _MBPS, _JPM = attrgetter("rtt_ms"), attrgetter("mbps"), attrgetter("j_per_mb")
# The per-device arrays of a Fleet, in scenario order.
_PER_DEVICE = (
    "gflops", "dpow", "grid", "emb", "cc", "wk", "oc", "ow", "send", "memory", "has_battery",
)  # fmt: skip


class Fleet:
    """Per-device coefficients and the capacity of every shared resource.

    It holds its problem weakly: the problem keeps it (`problem.derived["fleet"]`), and a
    strong reference back made every problem a reference cycle, which only the cyclic
    collector frees. The solvers pause that collector (`solver.gcpause`) and hand what
    they made to its oldest generation, which it seldom scans: the simulator's
    `continuum`, deriving a problem at every re-plan, grew by a megabyte a step and ran out
    of memory in its first simulated hour of the 200-device fleet."""

    @property
    def problem(self) -> Problem:
        problem = self._problem()
        if problem is None:
            raise ReferenceError("this fleet's problem is gone")
        return problem

    @problem.setter
    def problem(self, problem: Problem) -> None:
        self._problem = weakref.ref(problem)

    def __init__(self, problem: Problem) -> None:
        scn = problem.scenario
        self.problem = problem
        self.ids = [d.id for d in scn.devices]
        self.index = {d: i for i, d in enumerate(self.ids)}
        self.names = np.array(self.ids, dtype=object)
        self.n = n = len(self.ids)
        self.tiers = [d.tier for d in scn.devices]
        self._hosts: dict[tuple[str, ...], tuple[int, ...]] = {}
        self.w = scn.objective
        self.links = scn.links
        self._coefficients(problem, scn.devices, slice(None))
        self.capacity = np.concatenate(
            [
                np.full(n, scn.max_utilization),
                self.memory,
                self._battery_capacity(problem, scn.devices),
                np.full(len(scn.links), scn.max_utilization),
            ]
        )

    def _coefficients(self, problem: Problem, devices: Sequence[Device], at: Any) -> None:
        """Fill the per-device arrays at `at` (all of them, or the indices of `devices`)."""
        w = self.w
        gflops = np.array([d.gflops for d in devices])
        dpow = np.array([d.power_w.busy - d.power_w.idle for d in devices])
        grid = np.array([d.grid_gco2_per_kwh for d in devices])
        emb = embodied_g_per_s(
            np.array([d.embodied_kgco2e for d in devices]),
            np.array([d.lifetime_h for d in devices]),
        )
        # Weighted cost of one second of compute at probability 1, per device; of one GFLOP
        # (cc) and of a segment's fixed overhead (oc), with their worst-case ms (wk, ow).
        per_s = cost_per_busy_s(w, dpow, grid, emb)
        cc = per_s / gflops
        wk = 1000.0 / gflops
        ow = np.array([d.overhead_ms for d in devices], dtype=float)
        oc = per_s * ow / 1000.0
        # Weighted cost of one joule of transfer energy paid by each device.
        send = cost_per_joule_sent(w, grid)
        memory = np.array([d.memory_mb for d in devices], dtype=float)
        has_battery = np.array(
            [problem.cost.battery_limit_w(d.id) is not None for d in devices], dtype=bool
        )
        if isinstance(at, slice):
            self.gflops, self.dpow, self.grid, self.emb = gflops, dpow, grid, emb
            self.cc, self.wk, self.oc, self.ow, self.send = cc, wk, oc, ow, send
            self.memory, self.has_battery = memory, has_battery
            return
        for name, values in (
            ("gflops", gflops),
            ("dpow", dpow),
            ("grid", grid),
            ("emb", emb),
            ("cc", cc),
            ("wk", wk),
            ("oc", oc),
            ("ow", ow),
            ("send", send),
            ("memory", memory),
            ("has_battery", has_battery),
        ):
            array = getattr(self, name).copy()
            array[at] = values
            setattr(self, name, array)

    @staticmethod
    def _battery_capacity(problem: Problem, devices: Sequence[Device]) -> np.ndarray:
        bat = [problem.cost.battery_limit_w(d.id) for d in devices]
        return np.array([INF if b is None else max(b, 0.0) for b in bat], dtype=float)

    def without(self, problem: Problem, lost: Collection[str]) -> Fleet:
        """This fleet for `problem`, which is this one's less the devices `lost` and some
        links (the others in the same order)."""
        new = copy.copy(self)
        keep = np.array([d not in lost for d in self.ids])
        new.problem = problem
        new.links = problem.scenario.links
        new.ids = [d for d in self.ids if d not in lost]
        new.index = {d: i for i, d in enumerate(new.ids)}
        new.names = self.names[keep]
        new.n = n = len(new.ids)
        new.tiers = [t for t, k in zip(self.tiers, keep, strict=True) if k]
        new._hosts = {}
        for name in _PER_DEVICE:
            setattr(new, name, getattr(self, name)[keep])
        old_n = self.n
        new.capacity = np.concatenate(
            [
                self.capacity[:old_n][keep],
                self.capacity[old_n : 2 * old_n][keep],
                self.capacity[2 * old_n : 3 * old_n][keep],
                np.full(len(new.links), problem.scenario.max_utilization),
            ]
        )
        assert len(new.capacity) == 3 * n + len(new.links)
        return new

    def updated(self, problem: Problem, changed: Iterable[str]) -> Fleet:
        """This fleet for `problem`, whose devices and links are this fleet's, in the same
        order, but for the fields of the devices `changed` and the figures of some links
        (capacities count in utilization, so a link's figures do not enter here)."""
        new = copy.copy(self)
        new.problem = problem
        new.links = problem.scenario.links
        at = sorted(self.index[d] for d in changed)
        if not at:
            return new
        devices = [problem.scenario.devices[i] for i in at]
        tiers = [d.tier for d in devices]
        if any(self.tiers[i] != t for i, t in zip(at, tiers, strict=True)):
            new.tiers = list(self.tiers)
            for i, t in zip(at, tiers, strict=True):
                new.tiers[i] = t
            new._hosts = {}
        new._coefficients(problem, devices, np.array(at))
        new.capacity = self.capacity.copy()
        idx = np.array(at)
        new.capacity[self.n + idx] = new.memory[idx]
        new.capacity[2 * self.n + idx] = self._battery_capacity(problem, devices)
        return new

    def hosts_of(self, tiers: tuple[str, ...]) -> tuple[int, ...]:
        """Every device of one of these tiers, in scenario order."""
        key = tuple(sorted(tiers))
        hosts = self._hosts.get(key)
        if hosts is None:
            hosts = self._hosts[key] = tuple(i for i, t in enumerate(self.tiers) if t in key)
        return hosts


@dataclass(slots=True)
class CandidateRoutes:
    """Route figures between an app's source, its candidate hosts and its sink.

    For every transfer: `c1` weighted cost per MB, `c0` weighted fixed cost (the latency
    weight times half the rtt), `w1` worst-case ms per MB, `w0` fixed ms, `ok` routable.
    Sending to the same device is free (all zeros, ok).
    """

    hosts: list[int]
    in_c1: np.ndarray
    in_c0: np.ndarray
    in_w1: np.ndarray
    in_w0: np.ndarray
    in_ok: np.ndarray
    out_c1: np.ndarray
    out_c0: np.ndarray
    out_w1: np.ndarray
    out_w0: np.ndarray
    out_ok: np.ndarray
    c1: np.ndarray  # (K, K)
    c0: np.ndarray
    w1: np.ndarray
    w0: np.ndarray
    ok: np.ndarray
    links: frozenset[int] = frozenset()  # every link the routes cross
    # What the app's source pays at least over these hosts, by `solver.ownpack`'s bounds,
    # once asked: the bounds read the routes, the devices' power and the app, never a
    # battery's level, and the routes are carried from a re-plan to the next
    # (`solver.appcandidates`), where the verdict is asked again at each.
    least: dict[str, float] = field(default_factory=dict)

    def mbps_in(self, problem: Problem) -> tuple[tuple[int, float], ...]:
        """Each link the routes cross (by index) with its Mbit/s in `problem`: what a
        verdict made over these routes read of the bandwidths (`solver.ownpack`,
        `solver.unmet`)."""
        links = problem.scenario.links
        return tuple((k, links[k].mbps) for k in sorted(self.links))


def _figures(
    fleet: Fleet, found: list[Route], senders: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`transfer_ms` and the sender's energy of each route as arrays (cost per MB, fixed
    cost, ms per MB, fixed ms): the same operations, in the same order, as one route at a
    time, so the same floats."""
    n = len(found)
    rtt = np.fromiter(map(_RTT, found), float, n)
    mbps = np.fromiter(map(_MBPS, found), float, n)
    jpm = np.fromiter(map(_JPM, found), float, n)
    wl = fleet.w.latency
    fixed_ms = transfer_ms(rtt, mbps, 0.0)
    ms_per_mb = transfer_ms(rtt, mbps, 1.0) - fixed_ms
    send = fleet.send[np.array(senders, dtype=np.int64)]
    return jpm * send + wl * ms_per_mb, wl * fixed_ms, ms_per_mb, fixed_ms


_TIER_RANK = {"device": 0, "edge": 1, "cloud": 2}


def candidate_routes(
    fleet: Fleet, app: App, hosts: list[int], upward_only: bool = False
) -> CandidateRoutes:
    """Route figures for `hosts`. `upward_only` leaves out moves from a higher tier to a
    lower one (cloud -> edge, edge -> device) and between two end devices: on large
    fleets they are rarely worth their route searches, as activations shrink on the way.

    The routes are gathered first and their figures computed in one go (a 10,000-device
    solve asks for half a million routes, and writing four floats into an array per
    route cost more than finding the route in the cache)."""
    route = fleet.problem.cost.routes.route
    ids = fleet.ids
    rank = [_TIER_RANK[fleet.tiers[h]] for h in hosts]
    names = [ids[h] for h in hosts]
    source, sink_id = app.source, app.sink_id
    src = fleet.index[source]
    sink = fleet.index[sink_id]
    k = len(hosts)
    # Slots: k from the source, k to the sink, then k * k between hosts (row: sender).
    ok = [False] * (2 * k + k * k)
    at: list[int] = []
    senders: list[int] = []
    found: list[Route] = []
    for a, h in enumerate(hosts):
        name = names[a]
        if h == src:
            ok[a] = True
        else:
            r = route(source, name)
            if r is not None:
                ok[a] = True
                at.append(a)
                senders.append(src)
                found.append(r)
        if h == sink:
            ok[k + a] = True
        else:
            r = route(name, sink_id)
            if r is not None:
                ok[k + a] = True
                at.append(k + a)
                senders.append(h)
                found.append(r)
        row = 2 * k + a * k
        for b, g in enumerate(hosts):
            if g == h:
                ok[row + b] = True
                continue
            if upward_only and (rank[b] < rank[a] or rank[a] == rank[b] == 0):
                continue
            r = route(name, names[b])
            if r is not None:
                ok[row + b] = True
                at.append(row + b)
                senders.append(h)
                found.append(r)
    fig = np.zeros((4, 2 * k + k * k))
    if found:
        cols = np.array(at, dtype=np.int64)
        for row_, values in zip(fig, _figures(fleet, found, senders), strict=True):
            row_[cols] = values
    okv = np.array(ok, dtype=bool)
    pair = fig[:, 2 * k :].reshape(4, k, k)
    return CandidateRoutes(
        hosts=hosts,
        in_c1=fig[0, :k],
        in_c0=fig[1, :k],
        in_w1=fig[2, :k],
        in_w0=fig[3, :k],
        in_ok=okv[:k],
        out_c1=fig[0, k : 2 * k],
        out_c0=fig[1, k : 2 * k],
        out_w1=fig[2, k : 2 * k],
        out_w0=fig[3, k : 2 * k],
        out_ok=okv[k : 2 * k],
        c1=pair[0],
        c0=pair[1],
        w1=pair[2],
        w0=pair[3],
        ok=okv[2 * k :].reshape(k, k),
        links=frozenset(i for r in found for i in r.links),
    )


@dataclass(slots=True)
class Score:
    """A placement's weighted objective (migration included), worst-case ms, and resource
    use as parallel arrays (resource index, amount)."""

    objective: float
    worst_ms: float
    resources: np.ndarray
    amounts: np.ndarray
    routable: bool


class Scorer:
    """Exact objective, worst case and resource use of one app's placement, per segment."""

    def __init__(self, fleet: Fleet, migration: Migration) -> None:
        self.fleet = fleet
        self.migration = migration
        self.cm = fleet.problem.cost
        self.shapes: dict[str, ModelShape] = self.cm.shapes

    def _transfer(
        self, use: dict[int, float], app: App, a: int, b: int, mb: float, prob: float
    ) -> tuple[float, float, bool]:
        """(weighted cost, worst ms, routable) of one transfer; books energy and links."""
        if a == b:
            return 0.0, 0.0, True
        f = self.fleet
        r = self.cm.routes.route(f.ids[a], f.ids[b])
        if r is None:
            return 0.0, 0.0, False
        seconds_ms = transfer_ms(r.rtt_ms, r.mbps, mb)
        joules = prob * mb * r.j_per_mb
        rate = app.rate_rps
        if f.has_battery[a]:
            key = 2 * f.n + a
            use[key] = use.get(key, 0.0) + rate * joules
        for k in r.links:
            key = 3 * f.n + k
            use[key] = use.get(key, 0.0) + rate * prob * mb * 8.0 / f.links[k].mbps
        cost = joules * f.send[a] + f.w.latency * prob * seconds_ms
        return cost, seconds_ms, True

    def _compute(
        self, use: dict[int, float], app: App, d: int, gflop: float, expected_gflop: float
    ) -> tuple[float, float]:
        f = self.fleet
        self._busy(use, app, d, expected_gflop / f.gflops[d])
        return expected_gflop * f.cc[d], gflop * f.wk[d]

    def _overhead(
        self, use: dict[int, float], app: App, d: int, prob: float
    ) -> tuple[float, float]:
        """A segment or stage starting on d, with probability prob: its fixed overhead."""
        f = self.fleet
        if not f.ow[d]:
            return 0.0, 0.0
        self._busy(use, app, d, prob * f.ow[d] / 1000.0)
        return prob * f.oc[d], f.ow[d]

    def _busy(self, use: dict[int, float], app: App, d: int, seconds: float) -> None:
        """Book expected compute seconds of d: its utilization and its battery's power."""
        f = self.fleet
        use[d] = use.get(d, 0.0) + app.rate_rps * seconds
        if f.has_battery[d]:
            key = 2 * f.n + d
            use[key] = use.get(key, 0.0) + app.rate_rps * seconds * f.dpow[d]

    def score(self, app: App, p: Placement) -> Score:
        f = self.fleet
        use: dict[int, float] = {}
        cost = worst = 0.0
        ok = True
        src, sink = f.index[app.source], f.index[app.sink_id]
        mig_mb = 0.0
        if p.stages is not None:
            assert app.cascade is not None
            reach = self.cm.cascade_reach(app)
            last = len(app.cascade) - 1
            for k, (stage, dev) in enumerate(zip(app.cascade, p.stages, strict=True)):
                d = f.index[dev]
                m = self.cm.models[stage.model]
                exit_prob = 1.0 if k == last else (stage.exit_prob or 0.0)
                c, w, r = self._transfer(use, app, src, d, m.input_mb, reach[k])
                cost, worst, ok = cost + c, worst + w, ok and r
                c, w = self._overhead(use, app, d, reach[k])
                cost, worst = cost + c, worst + w
                g = self.shapes[m.id].gflops
                c, w = self._compute(use, app, d, g, reach[k] * g)
                cost, worst = cost + c, worst + w
                use[f.n + d] = use.get(f.n + d, 0.0) + m.params_mb
                res = m.layers[-1].out_mb
                c, w, r = self._transfer(use, app, d, sink, res, reach[k] * exit_prob)
                cost, worst, ok = cost + c, worst + (w if k == last else 0.0), ok and r
                mig_mb += self.migration.stage_mb(app.id, stage.model, dev)
        else:
            assert p.model is not None and p.blocks is not None
            s = self.shapes[p.model]
            layers = s.model.layers
            exits = s.exits
            result = layers[-1].out_mb
            blocks = [f.index[b] for b in p.blocks]
            c, w, r = self._transfer(use, app, src, blocks[0], s.model.input_mb, 1.0)
            cost, worst, ok = cost + c, worst + w, ok and r
            for i, d in enumerate(blocks):
                if i == 0 or blocks[i - 1] != d:  # a segment starts on d
                    c, w = self._overhead(use, app, d, s.reach[i])
                    cost, worst = cost + c, worst + w
                g = layers[i].gflops + s.exit_gflops[i]
                c, w = self._compute(use, app, d, g, s.reach[i] * g)
                cost, worst = cost + c, worst + w
                use[f.n + d] = use.get(f.n + d, 0.0) + layers[i].params_mb + s.exit_params_mb[i]
                if i in exits:
                    c, _, r = self._transfer(use, app, d, sink, result, s.reach[i] * s.exit_prob[i])
                    cost, ok = cost + c, ok and r
                if i + 1 < len(blocks) and blocks[i + 1] != d:
                    c, w, r = self._transfer(
                        use, app, d, blocks[i + 1], layers[i].out_mb, s.cont[i]
                    )
                    cost, worst, ok = cost + c, worst + w, ok and r
                mig_mb += self.migration.block_mb(app.id, p.model, i, p.blocks[i])
            c, w, r = self._transfer(use, app, blocks[-1], sink, result, s.cont[-1])
            cost, worst, ok = cost + c, worst + w, ok and r
        objective = app.rate_rps * cost + f.w.migration * mig_mb
        keys = np.fromiter(use.keys(), dtype=np.int64, count=len(use))
        vals = np.fromiter(use.values(), dtype=np.float64, count=len(use))
        return Score(objective, worst, keys, vals, ok)


__all__ = [
    "INF",
    "CandidateRoutes",
    "Fleet",
    "Score",
    "Scorer",
    "candidate_routes",
]
