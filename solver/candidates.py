"""Per-app candidate placements for the heuristic: exact chain DP with a Lagrangian SLO.

For a partitioned model the placement is a path through a layered graph: layer i holds
one node per (candidate host, segments used so far); a node's cost is block i's term on
that host, an edge's cost the activation transfer between hosts. With every cost of the
contract written as unary and pairwise terms (`solver.fastcost`), the cheapest path is the
app's optimum over its candidate hosts when the SLO is slack. The worst-case latency is
also a sum of those terms, so the SLO is handled by Lagrangian relaxation: minimise
`cost + lam * worst`, search `lam` by doubling and bisection, and keep the cheapest path
that meets the SLO. `min over paths (cost + lam * (worst - slo))` is a lower bound on the
app's SLO-constrained optimum for every `lam`; the largest one seen is reported.

The DP is vectorised over every app that runs the same model (numpy, shape
apps x segments x hosts x hosts per block), which is what makes 5,000 apps affordable.
A cascade's stages are independent terms, so its candidates come from enumerating every
combination of stage hosts, which is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from solver.chain import _Chain, chain_dp, path_figures
from solver.fastcost import INF, CandidateRoutes, Fleet, candidate_routes
from solver.fleetpaths import within_slo
from solver.plan import Placement
from solver.problem import Problem
from solver.scenario import App

_LAM_STEPS = 14


@dataclass(slots=True)
class Candidate:
    placement: Placement
    estimate: float  # objective by the DP's arrays (the scorer has the exact figure)


@dataclass(slots=True)
class AppOptions:
    """An app's candidates, cheapest first, and a lower bound on its optimum over its hosts."""

    candidates: list[Candidate] = field(default_factory=list)
    lower: float = INF
    why: str = ""


def padded(vals: list[np.ndarray], fill: float, shape: tuple[int, ...]) -> np.ndarray:
    """`vals` (one array per app) in one float array of `shape`, each padded with `fill`.
    On a large fleet every app has as many candidate hosts as the others: then the arrays
    are stacked whole, not copied in one at a time (65,000 copies at 10,000 devices)."""
    if vals and all(v.shape == shape[1:] for v in vals):
        return np.array(vals, dtype=float)
    arr = np.full(shape, fill)
    for a, v in enumerate(vals):
        arr[a][tuple(slice(0, x) for x in v.shape)] = v
    return arr


def chain_arrays(
    problem: Problem,
    fleet: Fleet,
    apps: list[App],
    model_id: str,
    routes: list[CandidateRoutes],
    forbid: list[np.ndarray] | None = None,
    moves: bool = True,
) -> _Chain:
    """The layered graph of `model_id` for each app over its candidate hosts.

    `forbid[a]` (optional, (K, K) bool) removes transfers between candidate hosts; the
    diagonal of a forbidden matrix removes the host itself. With `moves` false the move
    arrays are left empty (a caller that builds its own: the large-fleet bound).
    """
    s = problem.cost.shapes[model_id]
    m = s.model
    n = s.n
    na = len(apps)
    kmax = max(1, *(len(r.hosts) for r in routes))  # a dummy host when there is none
    g = np.array([layer.gflops + s.exit_gflops[i] for i, layer in enumerate(m.layers)])
    par = np.array([layer.params_mb + s.exit_params_mb[i] for i, layer in enumerate(m.layers)])
    out = np.array([layer.out_mb for layer in m.layers])
    reach = np.array(s.reach)
    cont = np.array(s.cont)
    emass = reach * np.array(s.exit_prob)
    has_exit = np.array([s.has_exit(i) for i in range(n)])
    res = m.layers[-1].out_mb
    w = fleet.w

    def pad(vals: list[np.ndarray], fill: float, shape: tuple[int, ...]) -> np.ndarray:
        return padded(vals, fill, (na, *shape))

    hosts = [np.array(r.hosts, dtype=np.int64) for r in routes]
    valid = pad([np.ones(len(h)) for h in hosts], 0.0, (kmax,)) > 0
    cc = pad([fleet.cc[h] for h in hosts], 0.0, (kmax,))
    wk = pad([fleet.wk[h] for h in hosts], 0.0, (kmax,))
    mem = pad([fleet.memory[h] for h in hosts], 0.0, (kmax,))
    oc = pad([fleet.oc[h] for h in hosts], 0.0, (kmax,))
    ow = pad([fleet.ow[h] for h in hosts], 0.0, (kmax,))
    rate = np.array([a.rate_rps for a in apps])

    def vec(name: str) -> np.ndarray:
        return pad([getattr(r, name) for r in routes], 0.0, (kmax,))

    def mat(name: str) -> np.ndarray:
        return pad([getattr(r, name) for r in routes], 0.0, (kmax, kmax))

    in_ok = pad([r.in_ok.astype(float) for r in routes], 0.0, (kmax,)) > 0
    out_ok = pad([r.out_ok.astype(float) for r in routes], 0.0, (kmax,)) > 0
    ok = pad([r.ok.astype(float) for r in routes], 0.0, (kmax, kmax)) > 0
    if forbid is not None:
        ok &= ~pad([f.astype(float) for f in forbid], 0.0, (kmax, kmax)).astype(bool)
        valid &= np.diagonal(ok, axis1=1, axis2=2)
    in_cost = m.input_mb * vec("in_c1") + vec("in_c0")
    in_worst = m.input_mb * vec("in_w1") + vec("in_w0")
    out_cost = res * vec("out_c1") + vec("out_c0")
    out_worst = res * vec("out_w1") + vec("out_w0")

    u = (reach * g)[None, :, None] * cc[:, None, :]
    u[:, 0, :] += in_cost + oc  # block 0 starts the first segment: its host's overhead
    u += emass[None, :, None] * out_cost[:, None, :]
    u[:, -1, :] += cont[-1] * out_cost
    u *= rate[:, None, None]
    uw = g[None, :, None] * wk[:, None, :]
    uw[:, 0, :] += in_worst + ow
    uw[:, -1, :] += out_worst
    if w.migration > 0:
        mig = problem.migration
        for a, app in enumerate(apps):
            if mig.applies(app.id):
                for i in range(n):
                    for k, h in enumerate(routes[a].hosts):
                        mb = mig.block_mb(app.id, model_id, i, fleet.ids[h])
                        u[a, i, k] += w.migration * mb
    bad = ~valid[:, None, :] | (par[None, :, None] > mem[:, None, :])
    bad[:, 0, :] |= ~in_ok
    bad |= (has_exit[None, :, None] & ~out_ok[:, None, :]) if n > 1 else False
    bad[:, -1, :] |= ~out_ok
    np.copyto(u, INF, where=bad)
    np.copyto(uw, INF, where=bad)

    stages = np.array([min(a.max_stages, n) for a in apps])
    if not moves:
        return _Chain(u, uw, np.zeros((na, 0, 0, 0)), np.zeros((na, 0, 0, 0)), stages)
    c1, c0, w1, w0 = mat("c1"), mat("c0"), mat("w1"), mat("w0")
    co = (cont * out)[: n - 1]
    # A move after block i starts a segment on the receiving host: its overhead.
    # rate * (co * c1 + cont * (c0 + oc)) and out * w1 + w0 + ow in place: same floats.
    t = co[None, :, None, None] * c1[:, None]
    t += cont[None, : n - 1, None, None] * (c0[:, None] + oc[:, None, None, :])
    t *= rate[:, None, None, None]
    tw = out[None, : n - 1, None, None] * w1[:, None]
    tw += w0[:, None]
    tw += ow[:, None, None, :]
    nomove = (~ok | np.eye(kmax, dtype=bool)[None])[:, None]
    np.copyto(t, INF, where=nomove)
    np.copyto(tw, INF, where=nomove)
    return _Chain(u, uw, t, tw, stages)


def _within_slo(ch: _Chain, rows: np.ndarray, slo: np.ndarray) -> _Chain:
    """`ch` with the blocks on hosts and the moves of `rows` that no path within the SLO
    takes at inf (`fleetpaths.within_slo`): a price then has fewer paths that break the
    SLO to trade against those that keep it, and finds cheaper ones that keep it."""
    uw = np.where(np.isinf(ch.u[rows]), INF, ch.uw[rows])
    gate = within_slo(uw, np.where(np.isinf(ch.t[rows]), INF, ch.tw[rows]), slo[rows])
    u, t = ch.u.copy(), ch.t.copy()
    u[rows] = np.where(gate.blocks, INF, ch.u[rows])
    if gate.moves:
        t[rows] = np.where(np.stack(gate.moves, axis=1), INF, ch.t[rows])
    return replace(ch, u=u, t=t)


def slo_paths(ch: _Chain, slo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per app: (cost, worst, path) of the cheapest SLO-meeting path found, and a lower
    bound on the cheapest SLO-meeting path. Cost is inf where no path meets the SLO."""
    na = len(slo)
    every = np.arange(na)
    if ch.u.shape[2] == 0:  # no hosts at all: no path, and no bound either
        nothing = np.full(na, INF)
        return nothing, nothing.copy(), np.zeros(ch.u.shape[:2], dtype=np.int64), nothing.copy()
    val, path = chain_dp(ch, np.zeros(na), every)
    cost, worst = path_figures(ch, every, path)
    tol = slo * (1.0 + 1e-9)
    best_cost = np.where(worst <= tol, cost, INF)
    best_path = path.copy()
    best_worst = worst.copy()
    lower = val.copy()
    need = np.flatnonzero((worst > tol) & np.isfinite(cost))
    if need.size == 0:
        return best_cost, best_worst, best_path, lower
    ch = _within_slo(ch, need, slo)

    def attempt(rows: np.ndarray, lam: np.ndarray) -> np.ndarray:
        v, p = chain_dp(ch, lam, rows)
        c, wst = path_figures(ch, rows, p)
        lower[rows] = np.maximum(lower[rows], v - lam * slo[rows])
        meets = wst <= tol[rows]
        better = meets & (c < best_cost[rows])
        upd = rows[better]
        best_cost[upd] = c[better]
        best_worst[upd] = wst[better]
        best_path[upd] = p[better]
        return np.asarray(meets)

    # lam in cost per ms: start where a path's cost and its worst case weigh the same.
    scale = np.maximum(np.abs(cost[need]), 1e-12) / np.maximum(worst[need], 1e-12)
    lower[need] = -INF
    fastest = scale * 1e9
    can = attempt(need, fastest)
    lower[need[~can]] = INF  # no path meets the SLO: the app cannot run this model
    rows = need[can]
    hi = scale[can]
    fastest = fastest[can]
    active = np.ones(rows.size, dtype=bool)
    for _ in range(8):
        if not active.any():
            break
        at = np.flatnonzero(active)
        meets = attempt(rows[at], hi[at])
        hi[at[~meets]] *= 10.0
        active[at[meets]] = False
    hi[active] = fastest[active]
    lo = np.zeros(rows.size)
    for _ in range(_LAM_STEPS):
        if rows.size == 0:
            break
        lam = np.where(lo > 0, np.sqrt(lo * hi), hi / 10.0)
        meets = attempt(rows, lam)
        hi = np.where(meets, lam, hi)
        lo = np.where(meets, lo, lam)
    return best_cost, best_worst, best_path, lower


def cascade_options(
    problem: Problem,
    fleet: Fleet,
    app: App,
    routes: CandidateRoutes,
    keep: int = 6,
    frugal: int = 0,
) -> tuple[list[tuple[float, tuple[int, ...]]], float]:
    """The cheapest stage-host combinations meeting the SLO (exact), and the optimum.
    `frugal`: after them, that many more of those that cost the source's battery least
    (what a drained source can still pay for; each stage's term reads its own host)."""
    assert app.cascade is not None
    cm = problem.cost
    hosts = np.array(routes.hosts)
    reach = cm.cascade_reach(app)
    last = len(app.cascade) - 1
    costs: list[np.ndarray] = []
    worsts: list[np.ndarray] = []
    mig = problem.migration
    for k, stage in enumerate(app.cascade):
        m = cm.models[stage.model]
        g = sum(layer.gflops for layer in m.layers)
        ep = 1.0 if k == last else (stage.exit_prob or 0.0)
        res = m.layers[-1].out_mb
        c = reach[k] * (g * fleet.cc[hosts] + fleet.oc[hosts])
        c = c + reach[k] * (m.input_mb * routes.in_c1 + routes.in_c0)
        c = c + reach[k] * ep * (res * routes.out_c1 + routes.out_c0)
        c = app.rate_rps * c
        if fleet.w.migration > 0 and mig.applies(app.id):
            c = c + fleet.w.migration * np.array(
                [mig.stage_mb(app.id, stage.model, fleet.ids[h]) for h in routes.hosts]
            )
        wst = g * fleet.wk[hosts] + fleet.ow[hosts] + m.input_mb * routes.in_w1 + routes.in_w0
        if k == last:
            wst = wst + res * routes.out_w1 + routes.out_w0
        bad = ~routes.in_ok | ~routes.out_ok | (m.params_mb > fleet.memory[hosts])
        costs.append(np.where(bad, INF, c))
        worsts.append(np.where(bad, INF, wst))
    total = costs[0]
    worst = worsts[0]
    for c, wst in zip(costs[1:], worsts[1:], strict=True):
        total = np.add.outer(total, c)
        worst = np.add.outer(worst, wst)
    total = total.ravel()
    worst = worst.ravel()
    slo = app.slo_ms if app.slo_ms is not None else INF
    total = np.where(worst <= slo * (1.0 + 1e-9), total, INF)
    order = np.argsort(total, kind="stable")[:keep]
    if frugal > 0:
        drain = np.zeros(())
        for use in cascade_source_joules(problem, fleet, app, hosts.tolist()):
            drain = np.add.outer(drain, use)
        drain = np.where(np.isfinite(total), drain.ravel(), INF)
        extra = np.argsort(drain, kind="stable")[: keep + frugal]
        order = np.concatenate([order, extra[~np.isin(extra, order)][:frugal]])
    shape = tuple(len(hosts) for _ in app.cascade)
    out = [
        (float(total[j]), tuple(int(hosts[x]) for x in np.unravel_index(j, shape)))
        for j in order
        if np.isfinite(total[j])
    ]
    return out, (out[0][0] if out else INF)


def cascade_source_joules(
    problem: Problem, fleet: Fleet, app: App, hosts: Sequence[int]
) -> list[np.ndarray]:
    """Per stage of a cascade, the joules an inference costs its source's battery with the
    stage on each of `hosts`: each stage's term reads its own host alone (the source sends
    it the input, by its reach), so a combination's is the sum of its stages'."""
    assert app.cascade is not None
    cm = problem.cost
    return [
        np.array([cm.stage_term(app, k, fleet.ids[h]).joules.get(app.source, 0.0) for h in hosts])
        for k in range(len(app.cascade))
    ]


def fleet_of(problem: Problem) -> Fleet:
    fleet = problem.derived.get("fleet")
    if not isinstance(fleet, Fleet):
        fleet = problem.derived["fleet"] = Fleet(problem)
    return fleet


def battery_arrays(
    problem: Problem,
    fleet: Fleet,
    app: App,
    model_id: str,
    routes: CandidateRoutes,
    weights: dict[int, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Battery power (W) that each term of `chain_arrays` makes the devices of `weights`
    pay, each weighted: (1, n, K) per block, (1, n-1, K, K) per transfer.

    A block's term charges its host's compute, its exit's and the last block's results to
    the sink, and on block 0 the source's sending of the input and the host's overhead; a
    transfer's term the sender, and the receiver's overhead (it starts a segment). Summed
    along a path this is `weights` times what `fastcost.Scorer` books for those devices'
    batteries. With it the DP can price a battery that forbidding hosts
    cannot relieve: the source's, which pays for sending its input wherever it goes.
    """
    s = problem.cost.shapes[model_id]
    layers = s.model.layers
    n = s.n
    hosts = routes.hosts
    k = len(hosts)
    ids = fleet.ids
    table = problem.cost.routes
    src, sink = fleet.index[app.source], fleet.index[app.sink_id]
    rate = app.rate_rps
    res = layers[-1].out_mb

    def joules_per_mb(a: int, b: int) -> float:
        r = table.route(ids[a], ids[b]) if a != b else None
        return 0.0 if r is None else r.j_per_mb

    ub = np.zeros((1, n, max(k, 1)))
    tb = np.zeros((1, max(n - 1, 0), max(k, 1), max(k, 1)))
    g = np.array([layer.gflops + s.exit_gflops[i] for i, layer in enumerate(layers)])
    emass = np.array(s.reach) * np.array(s.exit_prob)
    out = np.array([layer.out_mb for layer in layers[:-1]]) * np.array(s.cont[:-1])
    for d, wt in weights.items():
        if src == d:
            ub[0, 0, :k] += (
                wt * rate * s.model.input_mb * np.array([joules_per_mb(d, h) for h in hosts])
            )
        if d not in hosts:
            continue
        a = hosts.index(d)
        watts = rate * np.array(s.reach) * g / fleet.gflops[d] * fleet.dpow[d]
        # A segment starting on d pays d's overhead: block 0, or a move into d.
        overhead_w = rate * fleet.ow[d] / 1000.0 * fleet.dpow[d]
        watts[0] += overhead_w
        tb[0, :, :, a] += wt * overhead_w * np.array(s.cont[:-1])[:, None]
        watts += rate * res * joules_per_mb(d, sink) * emass
        watts[-1] += rate * res * joules_per_mb(d, sink) * s.cont[-1]
        ub[0, :, a] += wt * watts
        to = np.array([joules_per_mb(d, h) for h in hosts])
        tb[0, :, a, :] += wt * rate * out[:, None] * to[None, :]
    return ub, tb


def priced(ch: _Chain, ub: np.ndarray, tb: np.ndarray, mu: float) -> _Chain:
    """`ch` with `mu` times the `battery_arrays` added to its costs."""
    return replace(ch, u=ch.u + mu * ub, t=ch.t + mu * tb)


def all_single(ch: _Chain) -> tuple[np.ndarray, np.ndarray]:
    """(cost, worst) of running the whole model on each candidate host: (A, K)."""
    return ch.u.sum(axis=1), ch.uw.sum(axis=1)


__all__ = [
    "AppOptions",
    "Candidate",
    "all_single",
    "battery_arrays",
    "candidate_routes",
    "cascade_options",
    "cascade_source_joules",
    "chain_arrays",
    "chain_dp",
    "fleet_of",
    "padded",
    "path_figures",
    "priced",
    "slo_paths",
]
