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

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from solver.costs import cost_per_busy_s, cost_per_joule_sent, embodied_g_per_s
from solver.problem import Problem
from solver.routes import transfer_ms
from solver.scenario import App

Array = NDArray[np.float64]
INF = np.inf


@dataclass(frozen=True, slots=True)
class Usage:
    """What each choice of `Tables` uses of the devices' compute, memory and battery."""

    cpu: Array  # (n, h): utilization of host d
    mem: Array  # (n, h): MB on host d
    watts: Array  # (n, h): W paid by host d
    source_watts: Array  # (h,): W the source pays to send the input to host d (block 0)
    move_watts: Array  # (n-1, h, h): W paid by d to send to e
    worst_ms: Array  # (n, h): worst-case latency of block i on d (with its own transfers)
    move_worst_ms: Array  # (n-1, h, h): worst-case latency of the move d -> e
    # A move after block i starts a segment on e: e's overhead, in e's utilization and W.
    move_cpu: Array  # (n-1, h)
    move_host_watts: Array  # (n-1, h)


@dataclass(frozen=True, slots=True)
class Tables:
    """Objective coefficients of one app running one model on `hosts`."""

    hosts: list[str]
    unary: Array  # (n, h): block i on host d; inf when impossible on its own
    moves: Array  # (n-1, h, h): block i on d, block i+1 on e (d != e); inf when unroutable
    usage: Usage | None = None
    index: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def priced(self, source: int, cpu: Array, mem: Array, watts: Array, slo: float) -> Tables:
        """These tables with prices added: resource prices are fleet-wide vectors indexed
        like `Problem.device_index` (`source` is the app's source there), `slo` prices a
        millisecond of worst-case latency."""
        u = self.usage
        assert u is not None
        hcpu, hmem, hw = cpu[self.index], mem[self.index], watts[self.index]
        unary = self.unary + u.cpu * hcpu + u.mem * hmem + u.watts * hw + slo * u.worst_ms
        unary[0] = unary[0] + u.source_watts * watts[source]
        moves = self.moves + u.move_watts * hw[None, :, None] + slo * u.move_worst_ms
        moves = moves + (u.move_cpu * hcpu + u.move_host_watts * hw)[:, None, :]
        return Tables(self.hosts, unary, moves, u, self.index)


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
        joules = prob * mb * self.jpm
        out = app.rate_rps * (
            joules * cost_per_joule_sent(w, grid)[:, None]
            + w.latency * prob * transfer_ms(self.rtt, self.mbps, mb)
        )
        out = np.where(self.same, 0.0, out)
        return np.where(self.ok, out, INF)


def _device_vectors(problem: Problem, hosts: list[str]) -> tuple[Array, Array, Array, Array]:
    devs = [problem.cost.devices[d] for d in hosts]
    gflops = np.array([d.gflops for d in devs])
    dyn = np.array([d.power_w.busy - d.power_w.idle for d in devs])
    grid = np.array([d.grid_gco2_per_kwh for d in devs])
    emb = embodied_g_per_s(
        np.array([d.embodied_kgco2e for d in devs]), np.array([d.lifetime_h for d in devs])
    )
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
    rate = app.rate_rps
    use_cpu, use_mem, use_w = np.zeros((n, h)), np.zeros((n, h)), np.zeros((n, h))
    send_in = np.where(inbound.same[0], 0.0, rate * s.model.input_mb * inbound.jpm[0])
    send_out = np.where(outbound.same[:, 0], 0.0, rate * result_mb * outbound.jpm[:, 0])
    use_ms = np.zeros((n, h))
    in_ms = np.where(
        inbound.same[0], 0.0, transfer_ms(inbound.rtt[0], inbound.mbps[0], s.model.input_mb)
    )
    out_ms = np.where(
        outbound.same[:, 0], 0.0, transfer_ms(outbound.rtt[:, 0], outbound.mbps[:, 0], result_mb)
    )
    overhead_s = np.array([cm.devices[d].overhead_ms for d in hosts]) / 1000.0

    def busy(es: Array) -> Array:
        """Weighted objective of expected compute seconds `es` on each host."""
        return app.rate_rps * es * cost_per_busy_s(w, dyn, grid, emb)

    for i, layer in enumerate(s.model.layers):
        es = s.reach[i] * (layer.gflops + s.exit_gflops[i]) / gflops
        if i == 0:  # block 0 starts the first segment: its host's overhead, always run
            es = es + overhead_s
        joules = dyn * es
        use_ms[i] = 1000.0 * (layer.gflops + s.exit_gflops[i]) / gflops
        if i == 0:
            use_ms[i] += in_ms + 1000.0 * overhead_s
        if i == n - 1:
            use_ms[i] += out_ms
        use_cpu[i] = rate * es
        use_mem[i] = layer.params_mb + s.exit_params_mb[i]
        use_w[i] = rate * joules
        if s.has_exit(i):
            use_w[i] += send_out * s.reach[i] * s.exit_prob[i]
        if i == n - 1:
            use_w[i] += send_out * s.cont[i]
        u = busy(es)
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
    move_w = np.zeros((max(n - 1, 0), h, h))
    move_ms = np.zeros((max(n - 1, 0), h, h))
    move_cpu = np.zeros((max(n - 1, 0), h))
    move_host_w = np.zeros((max(n - 1, 0), h))
    for i in range(n - 1):
        move_ms[i] = np.where(
            between.same, 0.0, transfer_ms(between.rtt, between.mbps, s.model.layers[i].out_mb)
        )
        move_ms[i] += 1000.0 * overhead_s[None, :]
        move_cpu[i] = rate * s.cont[i] * overhead_s
        move_host_w[i] = move_cpu[i] * dyn
        m = between.cost(app, problem, s.model.layers[i].out_mb, s.cont[i], grid)
        m = m + busy(s.cont[i] * overhead_s)[None, :]
        np.fill_diagonal(m, INF)  # staying is not a move
        moves[i] = m
        move_w[i] = np.where(
            between.same, 0.0, rate * s.cont[i] * s.model.layers[i].out_mb * between.jpm
        )
    use_ms = np.where(np.isfinite(use_ms), use_ms, 0.0)
    move_ms = np.where(np.isfinite(move_ms), move_ms, 0.0)
    usage = Usage(use_cpu, use_mem, use_w, send_in, move_w, use_ms, move_ms, move_cpu, move_host_w)
    index = np.array([problem.device_index[d] for d in hosts], dtype=np.int64)
    return Tables(hosts, unary, moves, usage, index)


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


def stage_tables(problem: Problem, app: App, hosts: list[str]) -> tuple[Array, Usage]:
    """(stages, h) objective of each cascade stage on each host (inf if impossible), and
    what each uses; `Usage.source_watts` is (stages, h) here."""
    cm = problem.cost
    assert app.cascade is not None
    k_n, h = len(app.cascade), len(hosts)
    out = np.full((k_n, h), INF)
    cpu, mem, watts, src, worst = (np.zeros((k_n, h)) for _ in range(5))
    for k, stage in enumerate(app.cascade):
        for j, d in enumerate(hosts):
            term = cm.stage_term(app, k, d)
            if term.unroutable or term.memory_mb[d] > cm.devices[d].memory_mb:
                continue
            out[k, j] = cm.weighted(app, term) + (
                problem.scenario.objective.migration
                * problem.migration.stage_mb(app.id, stage.model, d)
            )
            cpu[k, j] = app.rate_rps * term.compute_s.get(d, 0.0)
            mem[k, j] = term.memory_mb.get(d, 0.0)
            watts[k, j] = app.rate_rps * term.joules.get(d, 0.0)
            if d != app.source:
                src[k, j] = app.rate_rps * term.joules.get(app.source, 0.0)
            worst[k, j] = term.worst_ms
    empty, none = np.zeros((0, h, h)), np.zeros((0, h))
    return out, Usage(cpu, mem, watts, src, empty, worst, empty, none, none)


def stage_table(problem: Problem, app: App, hosts: list[str]) -> Array:
    return stage_tables(problem, app, hosts)[0]


def best_path(t: Tables, max_stages: int) -> tuple[float, list[int]]:
    """The cheapest chain (host index per block) with at most max_stages segments."""
    n, h = t.unary.shape
    stages = max(1, min(max_stages, n))
    fwd = np.full((n, h, stages), INF)
    fwd[0, :, 0] = t.unary[0]
    back = np.zeros((n, h, stages), dtype=np.int64)  # previous host; -1 marks a stay
    for i in range(1, n):
        fwd[i] = fwd[i - 1]
        back[i] = -1
        for k in range(1, stages):
            cand = fwd[i - 1, :, k - 1][:, None] + t.moves[i - 1]
            arg = cand.argmin(axis=0)
            val = cand[arg, np.arange(h)]
            better = val < fwd[i, :, k]
            fwd[i, better, k] = val[better]
            back[i, better, k] = arg[better]
        fwd[i] += t.unary[i][:, None]
    flat = int(fwd[n - 1].argmin())
    e, k = divmod(flat, stages)
    cost = float(fwd[n - 1, e, k])
    path = [e]
    for i in range(n - 1, 0, -1):
        prev = int(back[i, e, k])
        if prev >= 0:
            e, k = prev, k - 1
        path.append(e)
    path.reverse()
    return cost, path


class AppBounds:
    """One app's best objective under resource prices, and which of its variables can be
    part of a plan better than an upper bound."""

    def __init__(self, problem: Problem, app: App, hosts: list[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.index = {d: j for j, d in enumerate(hosts)}
        self.host_ids = np.array([problem.device_index[d] for d in hosts], dtype=np.int64)
        self.source = problem.device_index[app.source]
        self.tables: dict[str, Tables] = {}
        self.stage_cost: Array | None = None
        self.stage_use: Usage | None = None
        if hosts and app.cascade is not None:
            self.stage_cost, self.stage_use = stage_tables(problem, app, hosts)
        elif hosts:
            for m in problem.model_options(app):
                self.tables[m] = partition_tables(problem, app, m, hosts)
        self.chains: dict[str, ChainBounds] = {}
        self.stages: Array | None = None
        self.best = INF
        self.limit = INF

    def _priced_stages(self, cpu: Array, mem: Array, watts: Array, slo: float) -> Array:
        assert self.stage_cost is not None and self.stage_use is not None
        u, ids = self.stage_use, self.host_ids
        return (
            self.stage_cost
            + u.cpu * cpu[ids]
            + u.mem * mem[ids]
            + u.watts * watts[ids]
            + u.source_watts * watts[self.source]
            + slo * u.worst_ms
        )

    def cheapest(
        self,
        cpu: Array,
        mem: Array,
        watts: Array,
        slo: float,
        use: tuple[Array, Array, Array],
    ) -> tuple[float, float]:
        """Best priced objective and its worst-case latency; adds the chosen placement's
        use to `use` (in place)."""
        if not self.hosts:
            return INF, 0.0
        ucpu, umem, uw = use
        ids = self.host_ids
        if self.stage_cost is not None:
            table = self._priced_stages(cpu, mem, watts, slo)
            assert self.stage_use is not None
            cols = table.argmin(axis=1)
            rows = np.arange(len(cols))
            for arr, full in ((self.stage_use.cpu, ucpu), (self.stage_use.mem, umem)):
                np.add.at(full, ids[cols], arr[rows, cols])
            np.add.at(uw, ids[cols], self.stage_use.watts[rows, cols])
            uw[self.source] += float(self.stage_use.source_watts[rows, cols].sum())
            worst = float(self.stage_use.worst_ms[rows, cols].sum())
            return float(table[rows, cols].sum()), worst
        best, chosen, model = INF, [], ""
        for m, t in self.tables.items():
            priced = t.priced(self.source, cpu, mem, watts, slo)
            cost, path = best_path(priced, self.app.max_stages)
            if cost < best:
                best, chosen, model = cost, path, m
        if not chosen or not np.isfinite(best):
            return INF, 0.0
        u = self.tables[model].usage
        assert u is not None
        rows = np.arange(len(chosen))
        worst = float(u.worst_ms[rows, chosen].sum())
        np.add.at(ucpu, ids[chosen], u.cpu[rows, chosen])
        np.add.at(umem, ids[chosen], u.mem[rows, chosen])
        np.add.at(uw, ids[chosen], u.watts[rows, chosen])
        uw[self.source] += float(u.source_watts[chosen[0]])
        for i in range(len(chosen) - 1):
            a, b = chosen[i], chosen[i + 1]
            if a != b:
                uw[ids[a]] += float(u.move_watts[i, a, b])
                uw[ids[b]] += float(u.move_host_watts[i, b])
                ucpu[ids[b]] += float(u.move_cpu[i, b])
                worst += float(u.move_worst_ms[i, a, b])
        return best, worst

    def prepare(self, cpu: Array, mem: Array, watts: Array, slo: float) -> None:
        """Forced bounds at these prices."""
        if not self.hosts:
            return
        if self.stage_cost is not None:
            self.stages = self._priced_stages(cpu, mem, watts, slo)
            self.best = float(self.stages.min(axis=1).sum())
            return
        for m, t in self.tables.items():
            self.chains[m] = chain_bounds(
                t.priced(self.source, cpu, mem, watts, slo), self.app.max_stages
            )
        self.best = min((c.best for c in self.chains.values()), default=INF)

    def set_limit(self, limit: float) -> None:
        self.limit = limit

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
