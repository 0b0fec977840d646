"""Per-app lower bounds, for fixing variables of the exact model before it is built.

Apps interact only through shared capacity, so the sum over apps of each app's own best
objective (capacity ignored) is a lower bound LB on the optimum. Given any feasible plan
of objective UB, a choice (block i on device d, or a move from d to e after block i) whose
best completion within its own app costs more than `app_min + (UB - LB)` cannot be part
of a plan better than UB: it is left out of the model. The optimum is untouched; on
fleets that are not contended the model shrinks to a few variables per block.

The tables here are the objective coefficients of `solver.costs` terms, computed with
numpy for every device at once; `tests/solver/test_bounds.py` checks them against the
term functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solver.costs import J_PER_KWH
from solver.problem import Problem
from solver.scenario import App

Array = NDArray[np.float64]
INF = np.inf


@dataclass(frozen=True, slots=True)
class Tables:
    """Objective coefficients of one app running one model on `hosts`."""

    hosts: list[str]
    unary: Array  # (n, h): block i on host d; inf when impossible on its own
    moves: Array  # (n-1, h, h): block i on d, block i+1 on e (d != e); inf when unroutable


class _Net:
    """Route figures between a set of devices, as matrices."""

    def __init__(self, problem: Problem, rows: list[str], cols: list[str]) -> None:
        cm = problem.cost
        shape = (len(rows), len(cols))
        self.rtt = np.zeros(shape)
        self.mbps = np.full(shape, INF)
        self.jpm = np.zeros(shape)
        self.ok = np.zeros(shape, dtype=bool)
        for r, a in enumerate(rows):
            for c, b in enumerate(cols):
                if a == b:
                    self.ok[r, c] = True
                    continue
                route = cm.route(a, b)
                if route is not None:
                    self.ok[r, c] = True
                    self.rtt[r, c] = route.rtt_ms
                    self.mbps[r, c] = route.mbps
                    self.jpm[r, c] = route.j_per_mb
        self.same = np.array([[a == b for b in cols] for a in rows], dtype=bool)

    def cost(self, app: App, problem: Problem, mb: float, prob: float, grid: Array) -> Array:
        """Weighted objective of sending mb with probability prob (sender grid per row)."""
        w = problem.scenario.objective
        seconds = self.rtt / 2.0 / 1000.0 + 8.0 * mb / self.mbps
        joules = prob * mb * self.jpm
        out = app.rate_rps * (
            w.energy * joules
            + w.carbon * (joules / J_PER_KWH * grid[:, None])
            + w.latency * (prob * seconds * 1000.0)
        )
        out = np.where(self.same, 0.0, out)
        return np.where(self.ok, out, INF)


def _device_vectors(problem: Problem, hosts: list[str]) -> tuple[Array, Array, Array, Array]:
    devs = [problem.cost.devices[d] for d in hosts]
    gflops = np.array([d.gflops for d in devs])
    dyn = np.array([d.power_w.busy - d.power_w.idle for d in devs])
    grid = np.array([d.grid_gco2_per_kwh for d in devs])
    emb = np.array([d.embodied_kgco2e * 1000.0 / (d.lifetime_h * 3600.0) for d in devs])
    return gflops, dyn, grid, emb


def partition_tables(problem: Problem, app: App, model_id: str, hosts: list[str]) -> Tables:
    cm = problem.cost
    w = problem.scenario.objective
    s = cm.shapes[model_id]
    n, h = s.n, len(hosts)
    gflops, dyn, grid, emb = _device_vectors(problem, hosts)
    src_grid = np.array([cm.devices[app.source].grid_gco2_per_kwh])
    inbound = _Net(problem, [app.source], hosts)
    outbound = _Net(problem, hosts, [app.sink_id])
    between = _Net(problem, hosts, hosts)
    mem = np.array([cm.devices[d].memory_mb for d in hosts])
    result_mb = s.model.layers[-1].out_mb
    unary = np.zeros((n, h))
    for i, layer in enumerate(s.model.layers):
        es = s.reach[i] * (layer.gflops + s.exit_gflops[i]) / gflops
        joules = dyn * es
        u = app.rate_rps * (
            w.energy * joules
            + w.carbon * (joules / J_PER_KWH * grid + es * emb)
            + w.latency * es * 1000.0
        )
        if i == 0:
            u = u + inbound.cost(app, problem, s.model.input_mb, 1.0, src_grid)[0]
        if s.has_exit(i):
            p = s.reach[i] * s.exit_prob[i]
            u = u + outbound.cost(app, problem, result_mb, p, grid)[:, 0]
        if i == n - 1:
            u = u + outbound.cost(app, problem, result_mb, s.cont[i], grid)[:, 0]
        migration = np.array([problem.migration.block_mb(app.id, model_id, i, d) for d in hosts])
        u = u + w.migration * migration
        fits = layer.params_mb + s.exit_params_mb[i] <= mem
        unary[i] = np.where(fits, u, INF)
    moves = np.zeros((max(n - 1, 0), h, h))
    for i in range(n - 1):
        m = between.cost(app, problem, s.model.layers[i].out_mb, s.cont[i], grid)
        np.fill_diagonal(m, INF)  # staying is not a move
        moves[i] = m
    return Tables(hosts, unary, moves)


@dataclass(frozen=True, slots=True)
class ChainBounds:
    """Best objective of one app (one model) and of each choice forced in it."""

    best: float
    block: Array  # (n, h): best with block i on host d
    move: Array  # (n-1, h, h): best with block i on d, i+1 on e, d != e
    stay: Array  # (n-1, h): best with blocks i and i+1 both on d


def chain_bounds(t: Tables, max_stages: int) -> ChainBounds:
    """Forward and backward passes over (block, device, segments used)."""
    n, h = t.unary.shape
    stages = max(1, min(max_stages, n))
    fwd = np.full((n, h, stages), INF)
    fwd[0, :, 0] = t.unary[0]
    for i in range(1, n):
        stay = fwd[i - 1]
        fwd[i] = stay
        for k in range(1, stages):
            # best over d of fwd[i-1, d, k-1] + moves[i-1, d, e]
            arrive = (fwd[i - 1, :, k - 1][:, None] + t.moves[i - 1]).min(axis=0)
            fwd[i, :, k] = np.minimum(fwd[i, :, k], arrive)
        fwd[i] += t.unary[i][:, None]
    bwd = np.full((n, h, stages), INF)
    bwd[n - 1] = t.unary[n - 1][:, None]
    for i in range(n - 2, -1, -1):
        nxt = bwd[i + 1].copy()
        for k in range(stages - 1):
            leave = (t.moves[i] + bwd[i + 1, :, k + 1][None, :]).min(axis=1)
            nxt[:, k] = np.minimum(nxt[:, k], leave)
        bwd[i] = nxt + t.unary[i][:, None]
    with np.errstate(invalid="ignore"):
        block = (fwd + bwd).min(axis=2) - t.unary
    block = np.where(np.isfinite(t.unary), block, INF)
    move = np.full((max(n - 1, 0), h, h), INF)
    stay = np.full((max(n - 1, 0), h), INF)
    for i in range(n - 1):
        for k in range(stages):
            stay[i] = np.minimum(stay[i], fwd[i, :, k] + bwd[i + 1, :, k])
            if k + 1 < stages:
                cand = fwd[i, :, k][:, None] + t.moves[i] + bwd[i + 1, :, k + 1][None, :]
                move[i] = np.minimum(move[i], cand)
    best = float(fwd[n - 1].min()) if n else 0.0
    return ChainBounds(best, block, move, stay)


def stage_table(problem: Problem, app: App, hosts: list[str]) -> Array:
    """(stages, h): weighted objective of each cascade stage on each host, inf if impossible."""
    cm = problem.cost
    assert app.cascade is not None
    out = np.full((len(app.cascade), len(hosts)), INF)
    for k, stage in enumerate(app.cascade):
        for j, d in enumerate(hosts):
            term = cm.stage_term(app, k, d)
            if term.unroutable or term.memory_mb[d] > cm.devices[d].memory_mb:
                continue
            out[k, j] = cm.weighted(app, term) + (
                problem.scenario.objective.migration
                * problem.migration.stage_mb(app.id, stage.model, d)
            )
    return out


class Pruner:
    """Which variables of one app can be part of a plan better than a known upper bound."""

    def __init__(self, problem: Problem, app: App, hosts: list[str]) -> None:
        self.index = {d: j for j, d in enumerate(hosts)}
        self.chains: dict[str, ChainBounds] = {}
        self.stages: Array | None = None
        if not hosts:
            self.best = INF  # the app cannot be placed; the model will say so
        elif app.cascade is not None:
            self.stages = stage_table(problem, app, hosts)
            self.best = float(self.stages.min(axis=1).sum()) if len(hosts) else INF
        else:
            for m in problem.model_options(app):
                t = partition_tables(problem, app, m, hosts)
                self.chains[m] = chain_bounds(t, app.max_stages)
            self.best = min((c.best for c in self.chains.values()), default=INF)
        self.limit = INF

    def set_gap(self, gap: float, tol: float) -> None:
        self.limit = self.best + gap + tol

    def block(self, m: str, i: int, d: str) -> bool:
        return bool(self.chains[m].block[i, self.index[d]] <= self.limit)

    def move(self, m: str, i: int, d: str, e: str) -> bool:
        return bool(self.chains[m].move[i, self.index[d], self.index[e]] <= self.limit)

    def stay(self, m: str, i: int, d: str) -> bool:
        return bool(self.chains[m].stay[i, self.index[d]] <= self.limit)

    def stage(self, k: int, d: str) -> bool:
        assert self.stages is not None
        row = self.stages[k]
        forced = self.best - row.min() + row[self.index[d]]
        return bool(forced <= self.limit)
