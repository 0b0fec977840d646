"""The one evaluator: score a placement and check every constraint of the contract.

Every solver reports the objective computed here, and every test checks plans here (and
against an independent implementation in the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from solver.costs import Cost, CostModel
from solver.plan import (
    AppResult,
    DeviceUse,
    Latency,
    LinkUse,
    Placement,
    Plan,
    PlanDoc,
    Segment,
    Stage,
    Status,
)
from solver.scenario import App, PreviousApp

# A limit holds when value <= limit * (1 + REL_TOL) + ABS_TOL: room for float rounding only.
REL_TOL = 1e-9
ABS_TOL = 1e-12


def within(value: float, limit: float) -> bool:
    return value <= limit * (1.0 + REL_TOL) + ABS_TOL if limit >= 0 else value <= limit + ABS_TOL


# -- migration -------------------------------------------------------------------------------
Unit = tuple[str, str]  # (model id, block name) or (model id, "exit:" + block name)


def previous_units(cm: CostModel, prev: PreviousApp) -> dict[Unit, set[str]]:
    """Where the previous plan had each block and exit head of one app.

    A set of devices, because a cascade may run one model in two stages: weights that are
    already on a device do not move to it.
    """
    units: dict[Unit, set[str]] = {}
    if prev.stages:
        for stage in prev.stages:
            m = cm.models.get(stage.model)
            if m is not None:
                for layer in m.layers:
                    units.setdefault((m.id, layer.name), set()).add(stage.device)
    elif prev.segments and prev.model in cm.models:
        m = cm.models[prev.model]
        names = [layer.name for layer in m.layers]
        exits = {ex.after for ex in m.exits}
        for seg in prev.segments:
            if seg.first not in names or seg.last not in names:
                continue
            for name in names[names.index(seg.first) : names.index(seg.last) + 1]:
                units.setdefault((m.id, name), set()).add(seg.device)
                if name in exits:
                    units.setdefault((m.id, "exit:" + name), set()).add(seg.device)
    return units


class Migration:
    """The MB of weights each placement choice moves away from the previous plan."""

    def __init__(self, cm: CostModel) -> None:
        self.cm = cm
        prev = cm.scenario.previous
        self.units: dict[str, dict[Unit, set[str]]] = {}
        if prev is not None:
            for p in prev.apps:
                if p.id in cm.apps:
                    self.units[p.id] = previous_units(cm, p)

    def applies(self, app_id: str) -> bool:
        return app_id in self.units

    def block_mb(self, app_id: str, model_id: str, i: int, device: str) -> float:
        units = self.units.get(app_id)
        if units is None:
            return 0.0
        s = self.cm.shapes[model_id]
        name = s.model.layers[i].name
        mb = 0.0
        if device not in units.get((model_id, name), ()):
            mb += s.model.layers[i].params_mb
        if s.has_exit(i) and device not in units.get((model_id, "exit:" + name), ()):
            mb += s.exit_params_mb[i]
        return mb

    def stage_mb(self, app_id: str, model_id: str, device: str) -> float:
        units = self.units.get(app_id)
        if units is None:
            return 0.0
        m = self.cm.models[model_id]
        return sum(
            layer.params_mb
            for layer in m.layers
            if device not in units.get((model_id, layer.name), ())
        )


# -- one app ---------------------------------------------------------------------------------
def app_cost(cm: CostModel, app: App, p: Placement) -> Cost:
    """The summed terms of one app's placement (per inference)."""
    total = Cost()
    if p.stages is not None:
        for k, device in enumerate(p.stages):
            total.add(cm.stage_term(app, k, device))
        return total
    assert p.model is not None and p.blocks is not None
    for i, device in enumerate(p.blocks):
        total.add(cm.block_term(app, p.model, i, device))
        if i + 1 < len(p.blocks) and p.blocks[i + 1] != device:
            total.add(cm.transition_term(p.model, i, device, p.blocks[i + 1]))
    return total


def app_migration(mig: Migration, app: App, p: Placement) -> float:
    if p.stages is not None:
        assert app.cascade is not None
        return sum(
            mig.stage_mb(app.id, st.model, d) for st, d in zip(app.cascade, p.stages, strict=True)
        )
    assert p.model is not None and p.blocks is not None
    return sum(mig.block_mb(app.id, p.model, i, d) for i, d in enumerate(p.blocks))


def structure_errors(cm: CostModel, app: App, p: Placement) -> list[str]:
    """Shape errors of a placement: wrong model, wrong length, unknown devices."""
    errs: list[str] = []
    if app.cascade is not None:
        if p.stages is None or len(p.stages) != len(app.cascade):
            errs.append(f"app {app.id}: a cascade needs one device per stage")
            return errs
    else:
        allowed = [app.model] if app.model is not None else list(app.variants or ())
        if p.model not in allowed or p.blocks is None:
            errs.append(f"app {app.id}: model {p.model!r} is not one of {allowed}")
            return errs
        if len(p.blocks) != cm.shapes[p.model].n:
            errs.append(f"app {app.id}: segments must cover every block of {p.model} in order")
            return errs
    for d in p.hosts():
        if d not in cm.devices:
            errs.append(f"app {app.id}: unknown device {d!r}")
    return errs


def app_violations(cm: CostModel, app: App, p: Placement, c: Cost) -> list[str]:
    """Per-app constraints: SLO, tiers, routes, accuracy, stages."""
    out: list[str] = []
    if app.slo_ms is not None and not within(c.worst_ms, app.slo_ms):
        out.append(f"app {app.id}: worst-case latency {c.worst_ms:.3f} ms > slo {app.slo_ms} ms")
    for d in sorted(p.hosts()):
        tier = cm.devices[d].tier
        if tier not in app.allowed_tiers:
            out.append(f"app {app.id}: device {d} is of tier {tier}, not in allowed_tiers")
    for a, b in dict.fromkeys(c.unroutable):
        out.append(f"app {app.id}: no route from {a} to {b}")
    if app.variants is not None and app.min_accuracy is not None:
        acc = cm.models[p.model or ""].accuracy if p.model in cm.models else None
        if acc is None or acc < app.min_accuracy:
            out.append(f"app {app.id}: model {p.model} accuracy {acc} < min_accuracy")
    if p.blocks is not None and p.segment_count > app.max_stages:
        out.append(f"app {app.id}: {p.segment_count} segments > max_stages {app.max_stages}")
    return out


# -- the whole plan ----------------------------------------------------------------------------
@dataclass(slots=True)
class Evaluation:
    objective: float
    costs: dict[str, Cost]
    migration_mb: dict[str, float]
    utilization: dict[str, float]
    memory_mb: dict[str, float]
    power_w: dict[str, float]
    link_utilization: dict[int, float]
    violations: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.violations


def evaluate(
    cm: CostModel,
    placements: Mapping[str, Placement],
    require_all: bool = True,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
) -> Evaluation:
    """Score placements (app id -> Placement) and list every broken constraint.

    `cache` (app id -> (placement, its cost)) skips recomputing the cost of a placement
    already costed on the same cost model, and is refreshed with the ones computed here.
    """
    scn = cm.scenario
    mig = Migration(cm)
    violations: list[str] = []
    costs: dict[str, Cost] = {}
    migration: dict[str, float] = {}
    objective = 0.0
    util = dict.fromkeys(cm.devices, 0.0)
    mem = dict.fromkeys(cm.devices, 0.0)
    power = dict.fromkeys(cm.devices, 0.0)
    link_load = dict.fromkeys(range(len(scn.links)), 0.0)
    for app in scn.apps:
        p = placements.get(app.id)
        if p is None:
            if require_all:
                violations.append(f"app {app.id}: not placed")
            continue
        errs = structure_errors(cm, app, p)
        if errs:
            violations.extend(errs)
            continue
        hit = cache.get(app.id) if cache is not None else None
        if hit is not None and hit[0] == p:
            c = hit[1]
        else:
            c = app_cost(cm, app, p)
            if cache is not None:
                cache[app.id] = (p, c)
        costs[app.id] = c
        migration[app.id] = app_migration(mig, app, p) if mig.applies(app.id) else 0.0
        objective += cm.weighted(app, c) + scn.objective.migration * migration[app.id]
        violations.extend(app_violations(cm, app, p, c))
        for d, s in c.compute_s.items():
            util[d] += app.rate_rps * s
        for d, mb in c.memory_mb.items():
            mem[d] += mb
        for d, j in c.joules.items():
            power[d] += app.rate_rps * j
        for k, mb in c.link_mb.items():
            link_load[k] += app.rate_rps * mb * 8.0 / scn.links[k].mbps
    cap = scn.max_utilization
    for d, dev in cm.devices.items():
        if not within(util[d], cap):
            violations.append(f"device {d}: compute utilization {util[d]:.4f} > {cap}")
        if not within(mem[d], dev.memory_mb):
            violations.append(f"device {d}: memory {mem[d]:.2f} MB > {dev.memory_mb} MB")
        limit = cm.battery_limit_w(d)
        if limit is not None and power[d] > 0 and not within(power[d], limit):
            violations.append(
                f"device {d}: battery: {power[d]:.4f} W for {scn.horizon_h} h "
                f"exceeds the {limit * scn.horizon_h:.3f} Wh above min_pct"
            )
    for k, u in link_load.items():
        if not within(u, cap):
            link = scn.links[k]
            violations.append(f"link {link.a}-{link.b}: bandwidth utilization {u:.4f} > {cap}")
    return Evaluation(objective, costs, migration, util, mem, power, link_load, violations)


def segments_of(cm: CostModel, p: Placement) -> list[Segment]:
    assert p.model is not None and p.blocks is not None
    names = [layer.name for layer in cm.models[p.model].layers]
    out: list[Segment] = []
    start = 0
    for i in range(1, len(p.blocks) + 1):
        if i == len(p.blocks) or p.blocks[i] != p.blocks[start]:
            out.append(
                Segment.model_construct(
                    first=names[start], last=names[i - 1], device=p.blocks[start]
                )
            )
            start = i
    return out


def build_plan(
    cm: CostModel,
    placements: Mapping[str, Placement],
    status: Status,
    solver: str,
    bound: float | None = None,
    solve_s: float = 0.0,
    stats: dict[str, float | int | str] | None = None,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
) -> Plan:
    """Evaluate placements and describe them in the contract's plan format.

    The document's parts are built without re-validation (`model_construct`): every value
    comes from the evaluator, and a fleet of thousands of devices would otherwise spend
    most of an incremental re-solve validating its own numbers.

    A plan that breaks a constraint is reported `infeasible` with its violations, whatever
    status the solver hoped for: the evaluator has the last word.
    """
    ev = evaluate(cm, placements, cache=cache)
    if ev.violations:
        status = Status.INFEASIBLE
    apps: list[AppResult] = []
    for app in cm.scenario.apps:
        p = placements.get(app.id)
        c = ev.costs.get(app.id)
        if p is None or c is None:
            continue
        stages = None
        if p.stages is not None:
            assert app.cascade is not None
            stages = [
                Stage(model=st.model, device=d) for st, d in zip(app.cascade, p.stages, strict=True)
            ]
        apps.append(
            AppResult.model_construct(
                id=app.id,
                model=p.model,
                segments=segments_of(cm, p) if p.blocks is not None else None,
                stages=stages,
                latency_ms=Latency.model_construct(worst=c.worst_ms, expected=c.expected_ms),
                energy_j=c.energy_j,
                carbon_g=c.carbon_g,
                slo_met=app.slo_ms is None or within(c.worst_ms, app.slo_ms),
                migration_mb=ev.migration_mb.get(app.id, 0.0),
            )
        )
    devices = []
    for d, dev in cm.devices.items():
        hours = None
        if dev.battery is not None and ev.power_w[d] > 0:
            hours = max(dev.battery.usable_wh, 0.0) / ev.power_w[d]
        devices.append(
            DeviceUse.model_construct(
                id=d,
                utilization=ev.utilization[d],
                memory_mb=ev.memory_mb[d],
                power_w=ev.power_w[d],
                battery_h=hours,
            )
        )
    links = [
        LinkUse.model_construct(a=link.a, b=link.b, utilization=ev.link_utilization[k])
        for k, link in enumerate(cm.scenario.links)
    ]
    doc = PlanDoc(
        status=status,
        solver=solver,
        objective=ev.objective,
        bound=bound,
        solve_s=solve_s,
        apps=apps,
        devices=devices,
        links=links,
        violations=ev.violations or None,
        stats=stats,
    )
    return Plan(status=status, placements=dict(placements), doc=doc)


def infeasible_plan(
    cm: CostModel, solver: str, reason: str, solve_s: float = 0.0, bound: float | None = None
) -> Plan:
    """No plan: an empty `apps` and a reason naming what cannot be satisfied."""
    empty = build_plan(cm, {}, Status.INFEASIBLE, solver, bound, solve_s)
    doc = empty.doc.model_copy(
        update={"objective": None, "apps": [], "violations": None, "reason": reason}
    )
    return Plan(status=Status.INFEASIBLE, placements={}, doc=doc)
