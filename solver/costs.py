"""The contract's cost model, as terms that add up.

Every cost of a placement is a sum of terms that each depend on one block's device
(unary) or on two consecutive blocks' devices (a transition). The evaluator adds the
terms of a placement; the exact model uses each term's totals as its coefficients. Both
read the same functions here, which is why a solver's objective and the evaluator's agree.

Units: MB, seconds inside, milliseconds in latencies, joules, grams CO2e.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from solver.routes import Num, Route, RouteTable
from solver.scenario import App, Device, Model, Objective, Scenario

J_PER_KWH = 3.6e6


@dataclass(slots=True)
class Cost:
    """What one inference costs, in expectation unless named worst."""

    energy_j: float = 0.0
    carbon_g: float = 0.0
    expected_ms: float = 0.0
    worst_ms: float = 0.0
    compute_s: dict[str, float] = field(default_factory=dict)  # expected busy seconds
    joules: dict[str, float] = field(default_factory=dict)  # paid by each device
    memory_mb: dict[str, float] = field(default_factory=dict)
    link_mb: dict[int, float] = field(default_factory=dict)
    unroutable: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: Cost) -> None:
        self.energy_j += other.energy_j
        self.carbon_g += other.carbon_g
        self.expected_ms += other.expected_ms
        self.worst_ms += other.worst_ms
        for mine, theirs in (
            (self.compute_s, other.compute_s),
            (self.joules, other.joules),
            (self.memory_mb, other.memory_mb),
        ):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v
        for link, v in other.link_mb.items():
            self.link_mb[link] = self.link_mb.get(link, 0.0) + v
        self.unroutable.extend(other.unroutable)


@dataclass(frozen=True, slots=True)
class ModelShape:
    """Per-block probabilities of a partitioned model; they do not depend on placement."""

    model: Model
    exit_prob: tuple[float, ...]  # probability of the exit after block i (0 when none)
    exit_gflops: tuple[float, ...]
    exit_params_mb: tuple[float, ...]
    reach: tuple[float, ...]  # probability that block i runs
    cont: tuple[float, ...]  # probability that the inference goes on after block i
    # The blocks with an exit head, and the whole model's GFLOPs (a cascade stage's): made
    # once per model and shared by the cost models changed from this one
    # (`CostModel(like=...)`), not by every `solver.fastcost.Scorer` of every re-plan.
    exits: frozenset[int]
    gflops: float

    @classmethod
    def of(cls, model: Model) -> ModelShape:
        by_block = {ex.after: ex for ex in model.exits}
        probs, gfl, par, reach, cont = [], [], [], [], []
        r = 1.0
        for layer in model.layers:
            ex = by_block.get(layer.name)
            p = ex.prob if ex else 0.0
            reach.append(r)
            probs.append(p)
            gfl.append(ex.gflops if ex else 0.0)
            par.append(ex.params_mb if ex else 0.0)
            r = r * (1.0 - p)
            cont.append(r)
        exits = frozenset(i for i, layer in enumerate(model.layers) if layer.name in by_block)
        gflops = sum(x.gflops for x in model.layers)
        return cls(
            model, tuple(probs), tuple(gfl), tuple(par), tuple(reach), tuple(cont), exits, gflops
        )

    @property
    def n(self) -> int:
        return len(self.model.layers)

    def has_exit(self, i: int) -> bool:
        return i in self.exits


class CostModel:
    """Builds cost terms for one scenario; routes are computed on first use and cached."""

    def __init__(
        self, scenario: Scenario, routes: RouteTable | None = None, like: CostModel | None = None
    ) -> None:
        """`like`: the cost model of a scenario this one was changed from; its tables of
        the devices, models and apps that are the very same objects here are shared (a
        fleet whose links move every second would rebuild them every second)."""
        self.scenario = scenario
        self.routes = routes if routes is not None else RouteTable(scenario)
        old = like.scenario if like is not None else None
        if like is not None and old is not None and _same(old.devices, scenario.devices):
            self.devices: dict[str, Device] = like.devices
        else:
            self.devices = {d.id: d for d in scenario.devices}
        if like is not None and old is not None and _same(old.models, scenario.models):
            self.models: dict[str, Model] = like.models
            self.shapes: dict[str, ModelShape] = like.shapes
        else:
            self.models = {m.id: m for m in scenario.models}
            self.shapes = {m.id: ModelShape.of(m) for m in scenario.models}
        if like is not None and old is not None and _same(old.apps, scenario.apps):
            self.apps: dict[str, App] = like.apps
        else:
            self.apps = {a.id: a for a in scenario.apps}
        self.weights = scenario.objective

    # -- primitives ------------------------------------------------------------------------
    def route(self, a: str, b: str) -> Route | None:
        return self.routes.route(a, b)

    def transfer(self, c: Cost, a: str, b: str, mb: float, prob: float, worst: bool) -> None:
        """Send mb from a to b with probability prob; a pays. Same device: free."""
        if a == b:
            return
        r = self.routes.route(a, b)
        if r is None:
            c.unroutable.append((a, b))
            return
        seconds = r.seconds(mb)
        if worst:
            c.worst_ms += seconds * 1000.0
        c.expected_ms += prob * seconds * 1000.0
        joules = prob * mb * r.j_per_mb
        c.energy_j += joules
        c.joules[a] = c.joules.get(a, 0.0) + joules
        c.carbon_g += joules / J_PER_KWH * self.devices[a].grid_gco2_per_kwh
        for k in r.links:
            c.link_mb[k] = c.link_mb.get(k, 0.0) + prob * mb

    def compute(self, c: Cost, device: str, gflop: float, prob: float) -> None:
        """Run gflop on device with probability prob (always on the worst-case path)."""
        self.busy(c, device, gflop / self.devices[device].gflops, prob)

    def overhead(self, c: Cost, device: str, prob: float) -> None:
        """The device's fixed compute time for one segment or stage that starts on it,
        run with probability prob (the probability that its first block runs)."""
        ms = self.devices[device].overhead_ms
        if ms:
            self.busy(c, device, ms / 1000.0, prob)

    def busy(self, c: Cost, device: str, seconds: float, prob: float) -> None:
        """`seconds` of the device's compute, with probability prob: latency, energy,
        carbon and compute utilization, as the contract counts compute."""
        d = self.devices[device]
        expected_s = prob * seconds
        joules = (d.power_w.busy - d.power_w.idle) * expected_s
        c.worst_ms += seconds * 1000.0
        c.expected_ms += expected_s * 1000.0
        c.energy_j += joules
        c.joules[device] = c.joules.get(device, 0.0) + joules
        c.compute_s[device] = c.compute_s.get(device, 0.0) + expected_s
        c.carbon_g += joules / J_PER_KWH * d.grid_gco2_per_kwh
        c.carbon_g += expected_s * embodied_g_per_s(d.embodied_kgco2e, d.lifetime_h)

    @staticmethod
    def hold(c: Cost, device: str, mb: float) -> None:
        c.memory_mb[device] = c.memory_mb.get(device, 0.0) + mb

    # -- terms of a partitioned model -------------------------------------------------------
    def block_term(self, app: App, model_id: str, i: int, device: str) -> Cost:
        """Block i of model_id (and its exit head) on device, with the transfers that
        depend on this block's device alone: the input (block 0), the result from its exit,
        the final result (last block)."""
        s = self.shapes[model_id]
        layer = s.model.layers[i]
        c = Cost()
        if i == 0:
            self.transfer(c, app.source, device, s.model.input_mb, 1.0, worst=True)
            self.overhead(c, device, 1.0)  # block 0 starts the first segment
        self.compute(c, device, layer.gflops + s.exit_gflops[i], s.reach[i])
        self.hold(c, device, layer.params_mb + s.exit_params_mb[i])
        result_mb = s.model.layers[-1].out_mb
        if s.has_exit(i):
            self.transfer(c, device, app.sink_id, result_mb, s.reach[i] * s.exit_prob[i], False)
        if i == s.n - 1:
            self.transfer(c, device, app.sink_id, result_mb, s.cont[i], worst=True)
        return c

    def transition_term(self, model_id: str, i: int, a: str, b: str) -> Cost:
        """Block i on a, block i+1 on b: the activation moves when the inference goes on,
        and block i+1 starts a segment on b (b's overhead, when block i+1 runs)."""
        s = self.shapes[model_id]
        c = Cost()
        self.transfer(c, a, b, s.model.layers[i].out_mb, s.cont[i], worst=True)
        self.overhead(c, b, s.cont[i])
        return c

    # -- terms of a cascade -----------------------------------------------------------------
    def cascade_reach(self, app: App) -> list[float]:
        assert app.cascade is not None
        reach, r = [], 1.0
        for k, stage in enumerate(app.cascade):
            reach.append(r)
            last = k == len(app.cascade) - 1
            r *= 1.0 - (1.0 if last else (stage.exit_prob or 0.0))
        return reach

    def stage_term(self, app: App, k: int, device: str) -> Cost:
        assert app.cascade is not None
        stage = app.cascade[k]
        m = self.models[stage.model]
        last = k == len(app.cascade) - 1
        reach = self.cascade_reach(app)[k]
        exit_prob = 1.0 if last else (stage.exit_prob or 0.0)
        c = Cost()
        self.transfer(c, app.source, device, m.input_mb, reach, worst=True)
        self.overhead(c, device, reach)
        self.compute(c, device, sum(layer.gflops for layer in m.layers), reach)
        self.hold(c, device, m.params_mb)
        self.transfer(c, device, app.sink_id, m.layers[-1].out_mb, reach * exit_prob, last)
        return c

    # -- the objective of one term -------------------------------------------------------------
    def weighted(self, app: App, c: Cost) -> float:
        w = self.weights
        return app.rate_rps * (
            w.energy * c.energy_j + w.carbon * c.carbon_g + w.latency * c.expected_ms
        )

    def battery_limit_w(self, device: str) -> float | None:
        """Most plan power a device may draw over the horizon; None when mains powered."""
        return battery_budget_w(self.devices[device], self.scenario.horizon_h)


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The same objects in the same order."""
    return a is b or (len(a) == len(b) and all(map(operator.is_, a, b)))


# What a cost term reads of a device: every field but its battery, whose level limits only
# what the device may draw (`battery_limit_w`), not what a placement costs. Every pack
# drains a little between two re-plans; were that a change of its costs, each re-plan would
# cost again every app that a camera sends from (bench/RESULTS.md, "Battery levels").
_PRICED = tuple(f for f in Device.model_fields if f != "battery")


def repriced(
    old: Mapping[str, Device], new: Mapping[str, Device], devices: Iterable[str]
) -> set[str]:
    """Of `devices`, those whose cost terms may differ from `old` to `new`: any field read
    by a term differs, or the device is in only one of them."""
    out: set[str] = set()
    for d in devices:
        a, b = old.get(d), new.get(d)
        if a is None or b is None or any(getattr(a, f) != getattr(b, f) for f in _PRICED):
            out.add(d)
    return out


def embodied_g_per_s(embodied_kgco2e: Num, lifetime_h: Num) -> Num:
    """Embodied carbon of one second of a device's compute, in grams: its embodied
    kgCO2e spread evenly over its lifetime (floats or numpy arrays of devices)."""
    return embodied_kgco2e * 1000.0 / (lifetime_h * 3600.0)


def cost_per_busy_s(w: Objective, busy_w: Num, grid: Num, embodied_g_s: Num) -> Num:
    """The objective of one second of a device's compute (per unit of rate): the energy
    above idle (`busy_w` watts), that energy's grid carbon and the embodied carbon of the
    second, and its 1000 ms of latency."""
    carbon = busy_w * grid / J_PER_KWH + embodied_g_s
    return w.energy * busy_w + w.carbon * carbon + w.latency * 1000.0


def cost_per_joule_sent(w: Objective, grid: Num) -> Num:
    """The objective of one joule a device pays to send: the joule and its grid carbon."""
    return w.energy + w.carbon * grid / J_PER_KWH


def battery_budget_w(device: Device, horizon_h: float) -> float | None:
    """The plan power a battery can pay over the horizon after the device's idle draw,
    `max(0, usable_wh / horizon_h - idle)`; None when mains powered. A battery that cannot
    last the horizon even idle has 0: it hosts nothing and sends nothing."""
    if device.battery is None:
        return None
    return max(0.0, device.battery.usable_wh / horizon_h - device.power_w.idle)


def battery_hours(device: Device, power_w: float) -> float | None:
    """Hours until `min_pct` at the idle draw plus the plan's power,
    `usable_wh / (idle + power)`; None for mains power or when both are zero."""
    if device.battery is None:
        return None
    draw = device.power_w.idle + power_w
    if draw <= 0:
        return None
    return max(device.battery.usable_wh, 0.0) / draw
