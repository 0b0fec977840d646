"""Neurosurgeon's choice, fast and exact: every split of an app bounded at once with
numpy, and only the candidates that may win scored by the baseline's own scorer.

`solver.baselines` defines the choice: each app on the candidate (a model and a split
between its source and one other device, or a cascade's stages on the two) with the least
`(own violations, objective or worst-case ms)`, ties to the first in a fixed order.
Scoring every candidate one `Cost` at a time is what took seconds a solve on a fleet of
hundreds of devices.

Here an app's candidates are laid out as arrays over (host, split): the cost model's terms
of a split are prefix sums over the split point on the source and suffix sums on the
host, with the routes' figures as arrays. These sums are added in another order than the
scorer's, so they are not its floats; they serve only as lower bounds, widened by far
more than any rounding of a sum of a few dozen non-negative terms can be (`SLACK`). The
candidates are then taken in the order of their bounds and scored by the scorer itself
until the next bound exceeds the best key found (`solver.splitchoice`): every candidate
left has a key above it, and among those scored, ties keep the first in the baseline's
order. So the choice is the baseline's own, bit for bit (tests/solver/test_splits.py).

A route's Mbit/s is the least of its links'. The links given as `traced` are read from a
figure vector instead of the scenario (`AppSplits.bounds(figures)`), so that the
simulator can bound the same candidates at other figures without compiling a scenario,
and at every traced link's best figure for a bound that holds whatever the figures are:
a rising bandwidth lowers every latency and changes nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solver.costs import J_PER_KWH, embodied_g_per_s
from solver.evaluate import ABS_TOL, REL_TOL
from solver.plan import Placement
from solver.problem import Problem
from solver.routes import Route
from solver.scenario import App
from solver.splitroutes import Array, Indices, Routes

# What a host's candidates read, by array (`reads`: one host, `same_reads`: all at once):
# of each route (`Routes.reads`), and of the host, its figures.
_HOST_READS = ("gf", "dp", "grid", "cx", "ov")
Key = tuple[int, float]
# Relative widening of every bound: a sum of n non-negative terms in any order is within
# n * 2**-53 of the exact sum, about 1e-14 here; this is five orders of magnitude more.
SLACK = 1e-9


class _Model:
    """A partitioned model's per-block figures, as arrays over the blocks."""

    def __init__(self, problem: Problem, model_id: str) -> None:
        s = self.shape = problem.cost.shapes[model_id]
        m = s.model
        self.id, self.n = model_id, s.n
        self.g = np.array([ly.gflops + s.exit_gflops[i] for i, ly in enumerate(m.layers)])
        reach = np.array(s.reach)
        hx = np.array([s.has_exit(i) for i in range(s.n)])
        self.pe = np.where(hx, reach * np.array(s.exit_prob), 0.0)
        cont = np.array(s.cont)
        self.last = float(cont[-1])
        self.res = float(m.layers[-1].out_mb)
        z = np.zeros(1)
        self.g_pre = np.concatenate([z, np.cumsum(self.g)])  # blocks before k, k = 0..n
        self.rg_pre = np.concatenate([z, np.cumsum(reach * self.g)])
        self.pe_pre = np.concatenate([z, np.cumsum(self.pe)])
        self.hx_pre = np.concatenate([[False], np.cumsum(hx) > 0])
        self.g_suf = np.cumsum(self.g[::-1])[::-1]  # blocks from k on, k = 0..n-1
        self.rg_suf = np.cumsum((reach * self.g)[::-1])[::-1]
        self.pe_suf = np.cumsum(self.pe[::-1])[::-1]
        out = np.array([ly.out_mb for ly in m.layers])
        # What crosses to the host at split k, and how likely: the input at k = 0, else
        # block k-1's activation when the inference goes on after it.
        self.t_mb = np.concatenate([[m.input_mb], out[:-1]])
        self.t_p = np.concatenate([[1.0], cont[:-1]])


def models_of(problem: Problem, app: App) -> list[str]:
    """Accuracy-feasible models; when there are none, every variant (the plan shows why)."""
    return problem.model_options(app) or list(app.variants or ())


class AppSplits:
    """One app's candidates in the baseline's order, and bounds on their keys."""

    def __init__(
        self,
        problem: Problem,
        app: App,
        slots: Mapping[int, int],
        routes: tuple[Mapping[str, Route], Mapping[str, Route]] | None = None,
    ) -> None:
        """`routes`: every route from the app's source and every route to its sink (by
        the other end), when the caller has them; else the problem's route table."""
        cm = problem.cost
        self.app = app
        s, t = app.source, app.sink_id
        frm: Mapping[str, Route]
        to: Mapping[str, Route]
        hosts = problem.hosts(app)
        if routes is None:
            frm = {d: r for d in hosts if d != s and (r := cm.route(s, d))}
            if s != t and (r := cm.route(s, t)) is not None:
                frm = {**frm, t: r}
            to = {d: r for d in frm if d != t and (r := cm.route(d, t)) is not None}
        else:
            frm, to = routes
        self.others = [d for d in hosts if d != s and d in frm]
        self.host_ids = tuple(hosts)
        # The devices each host's routes cross (`solver.splitshrunk`: a fleet that lost
        # none of them has the same routes).
        self.crosses = [
            frozenset(frm[d].path).union(to[d].path if d in to and d != t else ())
            for d in self.others
        ]
        self.st_crosses = frozenset(frm[t].path) if s != t and t in frm else frozenset()
        mbps = [lk.mbps for lk in problem.scenario.links]
        D = len(self.others)
        self.sd = Routes([frm[d] for d in self.others], [False] * D, slots, mbps)
        self.dt = Routes(
            [None if d == t else to.get(d) for d in self.others],
            [d == t for d in self.others],
            slots,
            mbps,
        )
        self.st = Routes([None if s == t else frm.get(t)], [s == t], slots, mbps)
        self._figures(problem)
        self.models: list[_Model] = []
        self.combos: list[tuple[int, ...]] = []
        if app.cascade is not None:
            self.combos = [c for c in itertools.product((0, 1), repeat=len(app.cascade)) if any(c)]
            self.stages = self._cascade_consts(problem)
        else:
            self.models = [_Model(problem, m) for m in models_of(problem, app)]
        self._routed()

    def _figures(self, problem: Problem) -> None:
        """What the scorer reads of the fleet beside the routes: the hosts' and the
        source's figures, the objective's weights and the models' accuracy."""
        cm, app = problem.cost, self.app
        w = problem.scenario.objective
        self.w = (app.rate_rps, w.energy, w.carbon, w.latency)
        self.slo = app.slo_ms
        self._accuracy = {m.id: m.accuracy for m in problem.scenario.models}
        devs = [cm.devices[d] for d in self.others]
        src = cm.devices[app.source]
        self.gf = np.array([d.gflops for d in devs])[:, None]
        self.dp = np.array([d.power_w.busy - d.power_w.idle for d in devs])[:, None]
        self.grid = np.array([d.grid_gco2_per_kwh for d in devs])[:, None]
        emb = np.array([embodied_g_per_s(d.embodied_kgco2e, d.lifetime_h) for d in devs])
        self.cx = self.dp * self.grid / J_PER_KWH + emb[:, None]
        self.ov = np.array([d.overhead_ms for d in devs])[:, None]
        self.s_gf, self.s_ov = src.gflops, src.overhead_ms
        self.s_dp = src.power_w.busy - src.power_w.idle
        self.s_grid = src.grid_gco2_per_kwh
        s_emb = embodied_g_per_s(src.embodied_kgco2e, src.lifetime_h)
        self.s_cx = self.s_dp * self.s_grid / J_PER_KWH + s_emb
        self.s_bad = int(src.tier not in app.allowed_tiers)

    def _routed(self) -> None:
        """What follows from the routes (`sd`, `dt`, `st`); the terms made when asked."""
        self.st_missing = int(not bool(self.st.ok[0]))
        self.dt_missing = (~self.dt.ok).astype(np.int64)[:, None]
        self._consts: dict[str, tuple[Array, ...]] = {}
        self._flat: tuple[NDArray[Any], ...] | None = None  # `_flatten`'s
        self._at: dict[str, int] | None = None  # `others` by device
        # Traced links each candidate group may read: the source alone (-1), or a host.
        self.group_slots = [
            self.sd.slots[j] | self.dt.slots[j] | self.st.slots[0] for j in range(len(self.others))
        ]
        self.source_slots = self.st.slots[0]

    # -- cascades ------------------------------------------------------------------------
    def _cascade_consts(
        self, problem: Problem
    ) -> list[tuple[float, float, float, float, float, bool]]:
        cm, app = problem.cost, self.app
        assert app.cascade is not None
        reach = cm.cascade_reach(app)
        out = []
        for k, st in enumerate(app.cascade):
            m = cm.models[st.model]
            last = k == len(app.cascade) - 1
            ep = 1.0 if last else (st.exit_prob or 0.0)
            gfl = sum(ly.gflops for ly in m.layers)
            out.append((reach[k], ep, m.input_mb, gfl, m.layers[-1].out_mb, last))
        return out

    def _cascade(self, f: Array) -> tuple[Array, Array, Array]:
        """(worst ms, objective, discrete violations) of every cascade candidate."""
        rate, we, wc, wl = self.w
        ws, os_, wd, od = [], [], [], []
        for reach, ep, in_mb, gfl, out_mb, last in self.stages:
            # On the source: no input transfer; the result goes to the sink.
            st_ms = float(self.st.ms(f, np.array([out_mb]))[0, 0])
            st_j = float(self.st.jpm[0]) * out_mb * reach * ep
            busy = self.s_ov / 1000.0 + gfl / self.s_gf
            w_s = 1000.0 * busy + (st_ms if last else 0.0)
            x_s = reach * 1000.0 * busy + reach * ep * st_ms
            e_s = self.s_dp * reach * busy + st_j
            c_s = self.s_cx * reach * busy + st_j * self.s_grid / J_PER_KWH
            ws.append(w_s)
            os_.append(rate * (we * e_s + wc * c_s + wl * x_s))
            sd_ms = self.sd.ms(f, np.array([in_mb]))[:, 0]
            dt_ms = self.dt.ms(f, np.array([out_mb]))[:, 0]
            busy_d = (self.ov / 1000.0 + gfl / self.gf)[:, 0]
            sd_j = reach * in_mb * self.sd.jpm
            dt_j = reach * ep * out_mb * self.dt.jpm
            w_d = sd_ms + 1000.0 * busy_d + (dt_ms if last else 0.0)
            x_d = reach * sd_ms + reach * 1000.0 * busy_d + reach * ep * dt_ms
            e_d = sd_j + self.dp[:, 0] * reach * busy_d + dt_j
            c_d = (
                sd_j * self.s_grid / J_PER_KWH
                + self.cx[:, 0] * reach * busy_d
                + dt_j * self.grid[:, 0] / J_PER_KWH
            )
            wd.append(w_d)
            od.append(rate * (we * e_d + wc * c_d + wl * x_d))
        combos = np.array(self.combos, dtype=float)  # (C, L): 1 where the stage is on d
        on_s = 1.0 - combos
        W_s, obj_s = np.array(ws), np.array(os_)
        W_d, obj_d = np.array(wd).T, np.array(od).T  # (D, L)
        W = (on_s @ W_s)[None, :] + W_d @ combos.T  # (D, C)
        obj = (on_s @ obj_s)[None, :] + obj_d @ combos.T
        any_s = (on_s.sum(axis=1) > 0).astype(np.int64)
        disc = self.dt_missing + (any_s * (self.s_bad + self.st_missing))[None, :]
        all_s = self.s_bad + self.st_missing
        return (
            np.concatenate([[W_s.sum()], W.reshape(-1)]),
            np.concatenate([[obj_s.sum()], obj.reshape(-1)]),
            np.concatenate([[all_s], disc.reshape(-1)]).astype(np.int64),
        )

    # -- partitioned models ---------------------------------------------------------------
    def _model_consts(self, m: _Model) -> tuple[Array, ...]:
        """The terms of `_model` that read no figure (made once per model): every figure
        enters a key only through a transfer's ms, which `_model` adds to these."""
        rate, we, wc, wl = self.w
        app, n = self.app, m.n
        st_jr = float(self.st.jpm[0]) * m.res
        on = np.arange(n + 1) > 0
        a_s = np.where(on, self.s_ov / 1000.0 + m.g_pre / self.s_gf, 0.0)
        q_s = np.where(on, self.s_ov / 1000.0 + m.rg_pre / self.s_gf, 0.0)
        e_s = self.s_dp * q_s + m.pe_pre * st_jr
        c_s = self.s_cx * q_s + m.pe_pre * st_jr * self.s_grid / J_PER_KWH
        whole_e = e_s[n] + m.last * st_jr
        whole_c = c_s[n] + m.last * st_jr * self.s_grid / J_PER_KWH
        sd_j = m.t_p * m.t_mb * self.sd.jpm[:, None]
        a_d = self.ov / 1000.0 + m.g_suf[None, :] / self.gf
        q_d = m.t_p * self.ov / 1000.0 + m.rg_suf[None, :] / self.gf
        sent = m.pe_suf[None, :] + m.last
        dt_jr = self.dt.jpm[:, None] * m.res
        E = e_s[None, :n] + sd_j + self.dp * q_d + sent * dt_jr
        C = (
            c_s[None, :n]
            + sd_j * self.s_grid / J_PER_KWH
            + self.cx * q_d
            + sent * dt_jr * self.grid / J_PER_KWH
        )
        acc = 0
        if app.variants is not None and app.min_accuracy is not None:
            a = self._accuracy.get(m.id)
            acc = int(a is None or a < app.min_accuracy)
        k1 = np.arange(n) > 0
        st_k = (m.hx_pre[:n] & k1).astype(np.int64) * self.st_missing
        disc = acc + self.dt_missing + (k1 * (self.s_bad + int(app.max_stages < 2)) + st_k)[None, :]
        whole_disc = acc + self.s_bad + self.st_missing
        W0 = 1000.0 * a_s[None, :n] + 1000.0 * a_d
        O0 = rate * (we * E + wc * C + wl * (1000.0 * q_s[None, :n] + 1000.0 * q_d))
        whole = np.array(
            [1000.0 * a_s[n], rate * (we * whole_e + wc * whole_c + wl * 1000.0 * q_s[n])]
        )
        # Where a transfer's ms enters the objective: its probability, times rate * wl.
        rl = rate * wl
        return (
            W0,
            O0,
            rl * m.pe_pre[None, :n],
            rl * m.t_p[None, :],
            rl * sent,
            whole,
            np.array([rl * (m.pe_pre[n] + m.last)]),
            np.concatenate([[whole_disc], disc.reshape(-1)]).astype(np.int64),
            8000.0 * m.t_mb[None, :],
            np.array([8000.0 * m.res]),
        )

    def _model(self, m: _Model, mbps: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        """(worst ms, objective, discrete violations) of every candidate of model m, the
        routes' Mbit/s at the figures being `mbps` (source-host, host-sink, source-sink).
        Added in another order than the scorer's: bounds only."""
        consts = self._consts.get(m.id)
        if consts is None:
            consts = self._consts[m.id] = self._model_consts(m)
        W0, O0, k_st, k_sd, k_dt, whole, k_whole, disc, sd_mb, res_mb = consts
        sd_mbps, dt_mbps, st_mbps = mbps
        sd, dt, st = self.sd, self.dt, self.st
        # Under `bounds`' errstate: a route at 0 Mbit/s takes forever, one that moves
        # nothing reads none.
        st_ms = float(st.half[0] + res_mb[0] / st_mbps[0]) if st.move[0] else 0.0
        sd_ms = np.where(sd.move[:, None], sd.half[:, None] + sd_mb / sd_mbps[:, None], 0.0)
        dt_ms = np.where(dt.move[:, None], dt.half[:, None] + res_mb / dt_mbps[:, None], 0.0)
        W = W0 + sd_ms + dt_ms
        obj = O0 + k_st * st_ms + k_sd * sd_ms + k_dt * dt_ms
        return (
            np.concatenate([[whole[0] + st_ms], W.reshape(-1)]),
            np.concatenate([[whole[1] + k_whole[0] * st_ms], obj.reshape(-1)]),
            disc,
        )

    # -- what the scorer reads -------------------------------------------------------------
    def reads(self, j: int, links: Sequence[tuple[str, str]]) -> tuple[object, ...]:
        """What the scorer reads for the candidates of host j (`others[j]`): its routes
        from the source and to the sink, and its figures; for j = -1, what every candidate
        reads: the source's figures, its route to the sink, the models and the weights.
        Traced links are named by link (`links`: the slots'), so that the candidates of
        two fleet shapes compare."""
        if j < 0:
            models = [m.id for m in self.models]
            source = (self.s_gf, self.s_ov, self.s_dp, self.s_grid, self.s_cx, self.s_bad)
            return self.app, source, self.w, models, self.st.reads(0, links)
        figures = tuple(getattr(self, name)[j, 0] for name in _HOST_READS)
        return self.sd.reads(j, links), self.dt.reads(j, links), figures

    def same_reads(
        self,
        other: AppSplits,
        mine: Sequence[int],
        theirs: Sequence[int],
        links: Sequence[tuple[str, str]],
        their_links: Sequence[tuple[str, str]],
    ) -> bool:
        """Whether `reads(mine[i], links)` equals `other.reads(theirs[i], their_links)`
        for every i (hosts only, not -1), every host at once."""
        a, b = np.asarray(mine, dtype=np.int64), np.asarray(theirs, dtype=np.int64)
        for name in _HOST_READS:
            if not np.array_equal(getattr(self, name)[a, 0], getattr(other, name)[b, 0]):
                return False
        return self.sd.same_reads(other.sd, a, b, links, their_links) and self.dt.same_reads(
            other.dt, a, b, links, their_links
        )

    # -- bounds and candidates --------------------------------------------------------------
    def bounds(self, figures: Array) -> tuple[Indices, Array]:
        """Lower bounds on every candidate's key at `figures`: (violations, value), in the
        baseline's order of candidates."""
        if self.app.cascade is not None:
            parts = [self._cascade(figures)]
        else:
            mbps = (self.sd.mbps(figures), self.dt.mbps(figures), self.st.mbps(figures))
            with np.errstate(divide="ignore", invalid="ignore"):  # once, not once a model
                parts = [self._model(m, mbps) for m in self.models]
        W = np.concatenate([p[0] for p in parts])
        obj = np.concatenate([p[1] for p in parts])
        disc = np.concatenate([p[2] for p in parts])
        return self._judged(W, obj, disc.copy())

    def _judged(self, W: Array, obj: Array, broken: Indices) -> tuple[Indices, Array]:
        """(violations, value) of the bounds from their worst ms, objective and discrete
        violations (`broken`, added to)."""
        w_lo = W * (1.0 - SLACK)
        if self.slo is not None:
            lim = self.slo * (1.0 + REL_TOL) + ABS_TOL if self.slo >= 0 else self.slo + ABS_TOL
            broken += (w_lo > lim).astype(np.int64)
        value = np.where(broken > 0, w_lo, obj * (1.0 - SLACK))
        return broken, value

    def candidate(self, i: int) -> Placement:
        """The i-th candidate in the baseline's order."""
        app, s = self.app, self.app.source
        if app.cascade is not None:
            if i == 0:
                return Placement(app=app.id, stages=(s,) * len(app.cascade))
            j, c = divmod(i - 1, len(self.combos))
            d = self.others[j]
            return Placement(app=app.id, stages=tuple(d if x else s for x in self.combos[c]))
        for m in self.models:
            size = 1 + len(self.others) * m.n
            if i < size:
                if i == 0:
                    return Placement(app=app.id, model=m.id, blocks=(s,) * m.n)
                j, k = divmod(i - 1, m.n)
                d = self.others[j]
                return Placement(app=app.id, model=m.id, blocks=(s,) * k + (d,) * (m.n - k))
            i -= size
        raise IndexError(i)

    def index(self, p: Placement) -> int | None:
        """The i for which `candidate(i) == p` (a partitioned model's), or None."""
        s, base = self.app.source, 0
        for m in self.models:
            if p.model == m.id and p.blocks is not None and len(p.blocks) == m.n:
                k = p.blocks.count(s)
                if k == m.n:
                    return base
                j = self._others_at().get(p.blocks[-1])
                if j is None or p.blocks != (s,) * k + (p.blocks[-1],) * (m.n - k):
                    return None
                return base + 1 + j * m.n + k
            base += 1 + len(self.others) * m.n
        return None

    def bounds_at(self, figures: Array, idx: Indices) -> tuple[Indices, Array]:
        """`bounds(figures)` of the candidates `idx` alone (a partitioned model's), by the
        very operations `_model` makes on each: the same floats."""
        if not self.others:
            broken, value = self.bounds(figures)
            return broken[idx], value[idx]
        flat = self._flat if self._flat is not None else self._flatten()
        j, whole, W0, O0, kst, ksd, kdt, sd_mb, res, disc = (a[idx] for a in flat)
        sd, dt, st = self.sd, self.dt, self.st
        st_mbps = st.mbps(figures)
        with np.errstate(divide="ignore", invalid="ignore"):
            st_ms = st.half[0] + res / st_mbps[0] if st.move[0] else np.zeros(len(idx))
            sd_ms = np.where(sd.move[j] & ~whole, sd.half[j] + sd_mb / sd.mbps(figures, j), 0.0)
            dt_ms = np.where(dt.move[j] & ~whole, dt.half[j] + res / dt.mbps(figures, j), 0.0)
            W = np.where(whole, W0 + st_ms, W0 + sd_ms + dt_ms)
            obj = O0 + kst * st_ms + ksd * sd_ms + kdt * dt_ms
        return self._judged(W, obj, disc.copy())

    def _flatten(self) -> tuple[NDArray[Any], ...]:
        """Per candidate, what `_model` reads of it: its host (0 for the source alone,
        which `whole` marks) and its terms."""
        D, parts = len(self.others), []
        for m in self.models:
            consts = self._consts.get(m.id)
            if consts is None:
                consts = self._consts[m.id] = self._model_consts(m)
            W0, O0, k_st, k_sd, k_dt, whole, k_whole, disc, sd_mb, res_mb = consts
            size = D * m.n

            def grid(a: Array, first: float, n: int = m.n) -> Array:
                return np.concatenate([[first], np.broadcast_to(a, (D, n)).reshape(-1)])

            parts.append((
                np.concatenate([[0], np.repeat(np.arange(D), m.n)]),
                np.arange(1 + size) == 0,
                grid(W0, whole[0]), grid(O0, whole[1]), grid(k_st, k_whole[0]),
                grid(k_sd, 0.0), grid(k_dt, 0.0), grid(sd_mb, 0.0),
                np.full(1 + size, res_mb[0]), disc,
            ))  # fmt: skip
        self._flat = tuple(np.concatenate(col) for col in zip(*parts, strict=True))
        return self._flat

    def _others_at(self) -> dict[str, int]:
        if self._at is None:
            self._at = {d: j for j, d in enumerate(self.others)}
        return self._at

    def hosts(self) -> Indices:
        """The index in `others` of each candidate's other device (-1: the source alone), in
        the baseline's order: per model (or for the cascade), the source alone, then each
        other device's splits (or combinations)."""
        cascade = self.app.cascade is not None
        per = [len(self.combos)] if cascade else [m.n for m in self.models]
        others = np.arange(len(self.others), dtype=np.int64)
        parts = [np.concatenate([[-1], np.repeat(others, n)]) for n in per]
        return np.concatenate(parts).astype(np.int64)
