"""Candidate route figures gathered in one go equal the route-by-route computation they
replaced, float for float, on a fleet large enough for neighbourhoods (upward only) and
on a small one (every host)."""

from __future__ import annotations

import numpy as np
import pytest

from solver.candidates import fleet_of, padded
from solver.fastcost import CandidateRoutes, Fleet, candidate_routes
from solver.generate import generate
from solver.hosts import adjacency, pick_hosts
from solver.problem import Problem
from solver.routes import Route, transfer_ms
from solver.scenario import App, parse_scenario

_RANK = {"device": 0, "edge": 1, "cloud": 2}


def _one(fleet: Fleet, r: Route, sender: int) -> tuple[float, float, float, float]:
    wl = fleet.w.latency
    fixed_ms = transfer_ms(r.rtt_ms, r.mbps, 0.0)
    ms_per_mb = transfer_ms(r.rtt_ms, r.mbps, 1.0) - fixed_ms
    return (r.j_per_mb * fleet.send[sender] + wl * ms_per_mb, wl * fixed_ms, ms_per_mb, fixed_ms)


def _reference(fleet: Fleet, app: App, hosts: list[int], upward_only: bool) -> list[np.ndarray]:
    """The previous implementation: one route at a time into the arrays."""
    routes = fleet.problem.cost.routes
    rank = [_RANK[fleet.tiers[h]] for h in hosts]
    ids = fleet.ids
    src, sink = fleet.index[app.source], fleet.index[app.sink_id]
    k = len(hosts)
    vin, vout, pair = np.zeros((5, k)), np.zeros((5, k)), np.zeros((5, k, k))
    for a, h in enumerate(hosts):
        if h == src:
            vin[4, a] = 1.0
        elif (r := routes.route(app.source, ids[h])) is not None:
            vin[:4, a] = _one(fleet, r, src)
            vin[4, a] = 1.0
        if h == sink:
            vout[4, a] = 1.0
        elif (r := routes.route(ids[h], app.sink_id)) is not None:
            vout[:4, a] = _one(fleet, r, h)
            vout[4, a] = 1.0
        for b, g in enumerate(hosts):
            if g == h:
                pair[4, a, b] = 1.0
                continue
            if upward_only and (rank[b] < rank[a] or rank[a] == rank[b] == 0):
                continue
            if (r := routes.route(ids[h], ids[g])) is not None:
                pair[:4, a, b] = _one(fleet, r, h)
                pair[4, a, b] = 1.0
    return [*vin[:4], vin[4] > 0, *vout[:4], vout[4] > 0, *pair[:4], pair[4] > 0]


def _fields(cr: CandidateRoutes) -> list[np.ndarray]:
    names = ["in_c1", "in_c0", "in_w1", "in_w0", "in_ok", "out_c1", "out_c0", "out_w1"]
    names += ["out_w0", "out_ok", "c1", "c0", "w1", "w0", "ok"]
    return [getattr(cr, n) for n in names]


@pytest.mark.parametrize(("devices", "upward_only"), [(400, True), (400, False), (30, False)])
def test_candidate_routes_equal_the_route_by_route_figures(devices: int, upward_only: bool) -> None:
    raw = generate(2, devices=devices, apps=devices // 2, blocks=6, overheads=True)
    problem = Problem(parse_scenario(raw))
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    for app in problem.scenario.apps:
        hosts = pick_hosts(problem, fleet, adj, app, 10)
        got = _fields(candidate_routes(fleet, app, hosts, upward_only))
        want = _reference(fleet, app, hosts, upward_only)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and g.dtype == w.dtype
            assert np.array_equal(g, w), app.id  # bit for bit, not close


def test_padded_stacks_equal_shapes_as_the_loop_pads_them() -> None:
    rng = np.random.default_rng(0)

    def loop(vals: list[np.ndarray], fill: float, shape: tuple[int, ...]) -> np.ndarray:
        arr = np.full(shape, fill)
        for a, v in enumerate(vals):
            arr[a][tuple(slice(0, x) for x in v.shape)] = v
        return arr

    same = [rng.random((4, 4)) for _ in range(5)]
    mixed = [rng.random((k, k)) for k in (4, 2, 3)]
    flags = [rng.random(4) > 0.5 for _ in range(3)]
    for vals, shape in ((same, (5, 4, 4)), (mixed, (3, 4, 4)), (flags, (3, 4))):
        got, want = padded(vals, 0.0, shape), loop(vals, 0.0, shape)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert padded([], 0.0, (0, 3)).shape == (0, 3)
