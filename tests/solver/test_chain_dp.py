"""The candidates' chain DP built in place gives the very floats of the plain formulas,
and so do the figures of its paths, summed over the blocks at once.

`chain_arrays` and `chain_dp` build their arrays in place and read the whole batch
without copying (issue 12, the command at 10,000 devices): the plans, their cost and the
bound must not move by one bit. The references below are the formulas they replaced,
written out plainly.
"""

from __future__ import annotations

import numpy as np
import pytest

from solver import chain
from solver.candidates import chain_arrays, chain_dp, fleet_of, path_figures, slo_paths
from solver.fastcost import INF, CandidateRoutes, candidate_routes
from solver.generate import generate
from solver.heuristic import HOSTS
from solver.hosts import adjacency, pick_hosts
from solver.problem import Problem
from solver.scenario import App, parse_scenario


def _reference_moves(
    ch_t_inputs: dict[str, np.ndarray], n: int, kmax: int
) -> tuple[np.ndarray, ...]:
    a = ch_t_inputs
    t = a["rate"][:, None, None, None] * (
        a["co"][None, :, None, None] * a["c1"][:, None]
        + a["cont"][None, : n - 1, None, None] * (a["c0"][:, None] + a["oc"][:, None, None, :])
    )
    tw = (
        a["out"][None, : n - 1, None, None] * a["w1"][:, None]
        + a["w0"][:, None]
        + a["ow"][:, None, None, :]
    )
    nomove = ~a["ok"] | np.eye(kmax, dtype=bool)[None]
    t[np.broadcast_to(nomove[:, None], t.shape)] = INF
    tw[np.broadcast_to(nomove[:, None], tw.shape)] = INF
    return t, tw


def _reference_dp(
    u_all: np.ndarray,
    uw_all: np.ndarray,
    t_all: np.ndarray,
    tw_all: np.ndarray,
    stages_all: np.ndarray,
    lam: np.ndarray,
    rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    u = u_all[rows] + lam[:, None, None] * np.where(np.isinf(u_all[rows]), 0.0, uw_all[rows])
    t = t_all[rows] + lam[:, None, None, None] * np.where(np.isinf(t_all[rows]), 0.0, tw_all[rows])
    na, n, k = u.shape
    s_max = int(stages_all[rows].max())
    v = np.full((na, s_max, k), INF)
    v[:, 0, :] = u[:, 0, :]
    args: list[np.ndarray] = []
    moves: list[np.ndarray] = []
    with np.errstate(invalid="ignore"):
        for i in range(n - 1):
            if s_max > 1:
                mv_all = v[:, :-1, :, None] + t[:, i, None, :, :]
                arg = mv_all.argmin(axis=2)
                mv = np.take_along_axis(mv_all, arg[:, :, None, :], axis=2)[:, :, 0, :]
                moved = mv < v[:, 1:, :]
                nv = v.copy()
                nv[:, 1:, :] = np.where(moved, mv, v[:, 1:, :])
                args.append(arg)
                moves.append(moved)
                v = nv
            v = v + u[:, i + 1, None, :]
    allowed = np.arange(s_max)[None, :] < stages_all[rows][:, None]
    v = np.where(allowed[:, :, None], v, INF)
    flat = v.reshape(na, -1)
    best = flat.argmin(axis=1)
    value = flat[np.arange(na), best]
    s_cur, k_cur = np.divmod(best, k)
    path = np.zeros((na, n), dtype=np.int64)
    path[:, n - 1] = k_cur
    idx = np.arange(na)
    for i in range(n - 2, -1, -1):
        if s_max > 1:
            sm1 = np.maximum(s_cur - 1, 0)
            moved = (s_cur > 0) & moves[i][idx, sm1, k_cur]
            prev = np.where(moved, args[i][idx, sm1, k_cur], k_cur)
            s_cur = np.where(moved, s_cur - 1, s_cur)
            k_cur = prev
        path[:, i] = k_cur
    return value, path


def _reference_figures(
    u: np.ndarray, uw: np.ndarray, t: np.ndarray, tw: np.ndarray, rows: np.ndarray, path: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A path's cost and worst ms added up block by block: a block, then the move after it."""
    na, n = path.shape
    cost, worst = np.zeros(na), np.zeros(na)
    for i in range(n):
        cost += u[rows, i, path[:, i]]
        worst += uw[rows, i, path[:, i]]
        if i + 1 < n:
            move = path[:, i] != path[:, i + 1]
            cost += np.where(move, t[rows, i, path[:, i], path[:, i + 1]], 0.0)
            worst += np.where(move, tw[rows, i, path[:, i], path[:, i + 1]], 0.0)
    return cost, worst


def _groups(problem: Problem) -> list[tuple[str, list[App], list[CandidateRoutes]]]:
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    by_model: dict[str, tuple[list[App], list[CandidateRoutes]]] = {}
    for app in problem.scenario.apps:
        if app.cascade is not None:
            continue
        hosts = pick_hosts(problem, fleet, adj, app, HOSTS)
        complete = len(hosts) == len(fleet.hosts_of(app.allowed_tiers))
        routes = candidate_routes(fleet, app, hosts, upward_only=not complete)
        for m in problem.model_options(app):
            apps, rs = by_model.setdefault(m, ([], []))
            apps.append(app)
            rs.append(routes)
    return [(m, apps, rs) for m, (apps, rs) in by_model.items()]


def _padded(routes: list[CandidateRoutes], name: str, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.zeros(shape)
    for a, r in enumerate(routes):
        v = getattr(r, name)
        arr[a][tuple(slice(0, x) for x in v.shape)] = v
    return arr


@pytest.mark.parametrize("few", [0, 1_000])  # numpy's walk back, or Python's, for every batch
@pytest.mark.parametrize(("seed", "devices", "apps"), [(3, 30, 12), (7, 400, 120)])
def test_chain_arrays_and_dp_give_the_plain_formulas_floats(
    seed: int, devices: int, apps: int, few: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain, "_FEW", few)
    problem = Problem(parse_scenario(generate(seed, devices=devices, apps=apps, blocks=8)))
    fleet = fleet_of(problem)
    rng = np.random.default_rng(seed)
    checked = 0
    for model_id, members, routes in _groups(problem):
        ch = chain_arrays(problem, fleet, members, model_id, routes)
        na, n, kmax = ch.u.shape
        s = problem.cost.shapes[model_id]

        hosts = [np.array(r.hosts, dtype=np.int64) for r in routes]
        oc, ow = np.zeros((na, kmax)), np.zeros((na, kmax))
        ok = np.zeros((na, kmax, kmax), dtype=bool)
        for a, h in enumerate(hosts):
            oc[a, : len(h)], ow[a, : len(h)] = fleet.oc[h], fleet.ow[h]
            ok[a, : len(h), : len(h)] = routes[a].ok
        out = np.array([layer.out_mb for layer in s.model.layers])
        cont = np.array(s.cont)
        t, tw = _reference_moves(
            {
                "rate": np.array([a.rate_rps for a in members]),
                "co": (cont * out)[: n - 1],
                "cont": cont,
                "out": out,
                "c1": _padded(routes, "c1", (na, kmax, kmax)),
                "c0": _padded(routes, "c0", (na, kmax, kmax)),
                "w1": _padded(routes, "w1", (na, kmax, kmax)),
                "w0": _padded(routes, "w0", (na, kmax, kmax)),
                "oc": oc,
                "ow": ow,
                "ok": ok,
            },
            n,
            kmax,
        )
        assert np.array_equal(ch.t, t) and np.array_equal(ch.tw, tw)
        lams: list[np.ndarray] = [
            np.zeros(na),
            np.asarray(rng.uniform(0.0, 2.0, size=na)),
            np.full(na, 1e6),
        ]
        subsets = [np.arange(na), np.flatnonzero(rng.random(na) < 0.5)]
        for lam in lams:
            for rows in subsets:
                if rows.size == 0:
                    continue
                got = chain_dp(ch, lam[rows], rows)
                want = _reference_dp(ch.u, ch.uw, ch.t, ch.tw, ch.stages, lam[rows], rows)
                assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
                figures = path_figures(ch, rows, got[1])
                plain = _reference_figures(ch.u, ch.uw, ch.t, ch.tw, rows, got[1])
                assert np.array_equal(figures[0], plain[0]) and np.array_equal(figures[1], plain[1])
                checked += 1
        # and the SLO search built on it returns finite, SLO-meeting paths
        slo = np.array([a.slo_ms if a.slo_ms is not None else INF for a in members])
        cost, worst, _, lower = slo_paths(ch, slo)
        fine = np.isfinite(cost)
        assert (worst[fine] <= slo[fine] * (1 + 1e-9)).all() and (lower[fine] <= cost[fine]).all()
    assert checked > 0
