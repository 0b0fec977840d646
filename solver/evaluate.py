"""The one evaluator: score a placement and check every constraint of the contract.

Every solver reports the objective computed here, and every test checks plans here (and
against an independent implementation in the tests). `evaluate` scores a whole plan, or,
given the evaluation of a plan on the same fleet (`base`), only what changed since.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import cast

from solver.costs import Cost, CostModel
from solver.migration import Migration, app_migration
from solver.plan import AppResult, DeviceUse, LinkUse, Placement
from solver.reasons import Code, Reason
from solver.routes import Route, RouteTable
from solver.scenario import App, Scenario

# A limit holds when value <= limit * (1 + REL_TOL) + ABS_TOL: room for float rounding only.
REL_TOL = 1e-9
ABS_TOL = 1e-12


def within(value: float, limit: float) -> bool:
    return value <= limit * (1.0 + REL_TOL) + ABS_TOL if limit >= 0 else value <= limit + ABS_TOL


def link_within(mbit: float, mbps: float, cap: float) -> bool:
    """A link's bandwidth constraint: the Mbit/s sent over it against its bandwidth."""
    return within(mbit / mbps, cap)


@functools.lru_cache(maxsize=4096)
def least_within_mbps(mbit: float, cap: float) -> float:
    """The least Mbit/s at which `link_within(mbit, mbps, cap)` holds, to the last bit
    (0.0: at any; inf: at none): `mbit / mbps` only falls as mbps rises, so a link
    carrying `mbit` (>= 0) is within iff its Mbit/s is at least this, and a caller that
    checks many figures against one plan compares instead of dividing (kept by its
    arguments: a simulated policy that changes some apps' splits at every step finds the
    same few sums on a link again)."""
    if mbit < 0.0:
        raise ValueError(f"a link's Mbit/s sent cannot be negative (got {mbit!r})")
    if mbit == 0.0:
        return 0.0 if within(0.0, cap) else math.inf
    limit = cap * (1.0 + REL_TOL) + ABS_TOL if cap >= 0 else cap + ABS_TOL
    if limit <= 0.0:
        return math.inf
    least = mbit / limit  # within a few units in the last place of the answer
    while not within(mbit / least, cap):
        least = math.nextafter(least, math.inf)
    while (lower := math.nextafter(least, 0.0)) > 0.0 and within(mbit / lower, cap):
        least = lower
    return least


def battery_within(power_w: float, limit_w: float | None) -> bool:
    """A device's battery constraint: the plan's power against what its pack pays for
    (`CostModel.battery_limit_w`; None: mains powered)."""
    return limit_w is None or power_w <= 0 or within(power_w, limit_w)


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


def fixed_worst_ms(cm: CostModel, placements: Mapping[str, Placement]) -> dict[str, float]:
    """Each app's worst-case latency on its placement at unlimited bandwidth: the part of
    it no link's Mbit/s changes (compute, overheads, half the routes' RTTs), by the same
    terms as `app_cost`, on the same routes with unlimited Mbit/s."""
    unbounded = _Unbounded(cm.routes).on(cm)
    return {a: app_cost(unbounded, cm.apps[a], p).worst_ms for a, p in placements.items()}


def latency_terms(
    cm: CostModel, app_id: str, p: Placement
) -> tuple[float, list[tuple[float, Route]]]:
    """The app's worst-case ms on `p` as `fixed + sum(k / Mbit/s of route)` over the
    routes its transfers cross: `fixed`, its worst ms at unlimited bandwidth (as
    `fixed_worst_ms`), and for each route crossed (as `cm` has it), k, the ms its
    transfers add at 1 Mbit/s (a transfer's ms is half the route's RTT, which `fixed`
    holds, plus its megabits over the route's Mbit/s). Made by `app_cost`'s own terms,
    on the same routes, each at 1 Mbit/s in turn and the others unlimited; a route's
    path does not read its links' Mbit/s, so at other figures the sum is the worst ms
    there, to the rounding of another order of addition."""
    app, probe = cm.apps[app_id], _Unbounded(cm.routes)
    on = probe.on(cm)
    fixed = app_cost(on, app, p).worst_ms
    terms = []
    for key, r in list(probe.asked.items()):
        if r is not None and not math.isinf(r.mbps):
            probe.slow = key
            terms.append((app_cost(on, app, p).worst_ms - fixed, r))
    return fixed, terms


class _Unbounded:
    """`routes`, each route with unlimited Mbit/s but `slow`'s, at 1; the routes asked."""

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes
        self.slow: tuple[str, str] | None = None
        self.asked: dict[tuple[str, str], Route | None] = {}

    def on(self, cm: CostModel) -> CostModel:
        """`cm` with these routes (a shallow copy: a cost model keeps no costs)."""
        out = copy.copy(cm)
        out.routes = cast(RouteTable, self)
        return out

    def route(self, a: str, b: str) -> Route | None:
        r = self.asked[(a, b)] = self._routes.route(a, b)
        return None if r is None else replace(r, mbps=1.0 if (a, b) == self.slow else math.inf)


def _shape(app: App, what: str) -> Reason:
    return Reason(Code.STRUCTURE, f"app {app.id}: {what}", app.id)


def structure_errors(cm: CostModel, app: App, p: Placement) -> list[Reason]:
    """Shape errors of a placement: wrong model, wrong length, unknown devices."""
    errs: list[Reason] = []
    if app.cascade is not None:
        if p.stages is None or len(p.stages) != len(app.cascade):
            errs.append(_shape(app, "a cascade needs one device per stage"))
            return errs
    else:
        allowed = [app.model] if app.model is not None else list(app.variants or ())
        if p.model not in allowed or p.blocks is None:
            errs.append(_shape(app, f"model {p.model!r} is not one of {allowed}"))
            return errs
        if len(p.blocks) != cm.shapes[p.model].n:
            errs.append(_shape(app, f"segments must cover every block of {p.model} in order"))
            return errs
    for d in p.hosts():
        if d not in cm.devices:
            errs.append(_shape(app, f"unknown device {d!r}"))
    return errs


def app_violations(cm: CostModel, app: App, p: Placement, c: Cost) -> list[Reason]:
    """Per-app constraints: SLO, tiers, routes, accuracy, stages."""
    out: list[Reason] = []

    def broken(code: Code, what: str) -> None:
        out.append(Reason(code, f"app {app.id}: {what}", app.id))

    if app.slo_ms is not None and not within(c.worst_ms, app.slo_ms):
        broken(Code.SLO, f"worst-case latency {c.worst_ms:.3f} ms > slo {app.slo_ms} ms")
    for d in sorted(p.hosts()):
        tier = cm.devices[d].tier
        if tier not in app.allowed_tiers:
            broken(Code.TIER, f"device {d} is of tier {tier}, not in allowed_tiers")
    for a, b in dict.fromkeys(c.unroutable):
        broken(Code.UNREACHABLE, f"no route from {a} to {b}")
    if app.variants is not None and app.min_accuracy is not None:
        acc = cm.models[p.model or ""].accuracy if p.model in cm.models else None
        if acc is None or acc < app.min_accuracy:
            broken(Code.ACCURACY, f"model {p.model} accuracy {acc} < min_accuracy")
    if p.blocks is not None and p.segment_count > app.max_stages:
        broken(Code.STRUCTURE, f"{p.segment_count} segments > max_stages {app.max_stages}")
    return out


# -- the whole plan ----------------------------------------------------------------------------
@dataclass(slots=True)
class AppRecord:
    """One app's share of an evaluation: what it adds to the totals and the objective."""

    app: App
    placement: Placement
    cost: Cost
    migration_mb: float
    term: float  # its part of the objective
    violations: list[Reason]


@dataclass(slots=True)
class PlanParts:
    """The plan document's parts of an evaluation, kept so that the next plan, evaluated
    incrementally on top of it, rebuilds only the parts that changed."""

    apps: dict[str, AppResult]
    devices: dict[str, DeviceUse]
    links: list[LinkUse]


@dataclass(slots=True)
class Evaluation:
    objective: float
    costs: dict[str, Cost]
    migration_mb: dict[str, float]
    utilization: dict[str, float]
    memory_mb: dict[str, float]
    power_w: dict[str, float]
    link_utilization: dict[int, float]
    found: list[Reason] = field(default_factory=list)  # every broken constraint
    # What an incremental evaluation of the next plan starts from (`evaluate(base=...)`).
    scenario: Scenario | None = None
    records: dict[str, AppRecord] = field(default_factory=dict)
    link_mbit: list[float] = field(default_factory=list)  # Mbit/s sent over each link
    device_violations: dict[str, list[Reason]] = field(default_factory=dict)
    link_violations: dict[int, Reason] = field(default_factory=dict)
    # Devices and links whose figures may differ from the base's; None: evaluated afresh.
    changed_devices: set[str] | None = None
    changed_links: set[int] | None = None
    base: Evaluation | None = None
    parts: PlanParts | None = None
    # The last scenario compared with this one's by `changes_from`, and what it found.
    compared: tuple[Scenario, tuple[set[str], set[int]] | None] | None = None

    @property
    def feasible(self) -> bool:
        return not self.found

    @property
    def violations(self) -> list[str]:
        """The sentences of `found`, as the contract's plan lists them."""
        return [r.message for r in self.found]


def app_record(
    cm: CostModel,
    app: App,
    p: Placement,
    mig: Migration,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
    cost: Cost | None = None,
) -> AppRecord | list[Reason]:
    """One app's share of an evaluation, as `evaluate` makes it (its cost from `cache`
    when there, else computed and cached), or its structure errors."""
    errs = structure_errors(cm, app, p)
    if errs:
        return errs
    c = cost if cost is not None else cached_cost(cm, app, p, cache)
    m = app_migration(mig, app, p)
    w_mig = cm.scenario.objective.migration
    return AppRecord(app, p, c, m, cm.weighted(app, c) + w_mig * m, app_violations(cm, app, p, c))


def cached(
    cache: Mapping[str, tuple[Placement, Cost]] | None, app_id: str, p: Placement
) -> Cost | None:
    """The cost `cache` holds for the app, if it holds one for placement `p`."""
    hit = cache.get(app_id) if cache is not None else None
    return hit[1] if hit is not None and (hit[0] is p or hit[0] == p) else None


def cached_cost(
    cm: CostModel, app: App, p: Placement, cache: dict[str, tuple[Placement, Cost]] | None
) -> Cost:
    """The app's cost at `p`: from `cache` when it holds it for `p`, else computed (and
    cached)."""
    c = cached(cache, app.id, p)
    if c is None:
        c = app_cost(cm, app, p)
        if cache is not None:
            cache[app.id] = (p, c)
    return c


def changes_from(base: Evaluation, scn: Scenario) -> tuple[set[str], set[int]] | None:
    """The devices and links of `scn` that are not the very objects `base` was evaluated
    with, or None when `scn` differs from it in more than their fields (another fleet, links
    in another order, other limits or weights): then nothing of `base` can be reused."""
    old = base.scenario
    if old is None:
        return None
    if base.compared is not None and base.compared[0] is scn:
        return base.compared[1]
    found = _compare(old, scn)
    base.compared = (scn, found)
    return found


def _compare(old: Scenario, scn: Scenario) -> tuple[set[str], set[int]] | None:
    if (
        old.objective != scn.objective
        or old.max_utilization != scn.max_utilization
        or old.horizon_h != scn.horizon_h
        or len(old.devices) != len(scn.devices)
        or len(old.links) != len(scn.links)
    ):
        return None
    devices: set[str] = set()
    for d, e in zip(scn.devices, old.devices, strict=True):
        if d is not e:
            if d.id != e.id:
                return None
            devices.add(d.id)
    links: set[int] = set()
    for k, (a, b) in enumerate(zip(scn.links, old.links, strict=True)):
        if a is not b:
            if a.a != b.a or a.b != b.b:
                return None
            links.add(k)
    return devices, links


def evaluate(
    cm: CostModel,
    placements: Mapping[str, Placement],
    require_all: bool = True,
    cache: dict[str, tuple[Placement, Cost]] | None = None,
    migration: Migration | None = None,
    base: Evaluation | None = None,
) -> Evaluation:
    """Score placements (app id -> Placement) and list every broken constraint.

    `cache` (app id -> (placement, its cost)) skips recomputing the cost of a placement
    already costed on the same cost model, and is refreshed with the ones computed here.

    `base`, an evaluation of another plan on this fleet or on one that differs only in
    some devices' and links' fields (an incremental re-solve's previous problem), makes
    the work proportional to what changed: an app whose placement and cached cost are the
    very ones of `base` keeps its share of the totals, the others' shares are taken out
    and put back, and only the devices and links they touch are checked again. The result
    is the full evaluation's, up to float rounding in the totals.
    """
    scn = cm.scenario
    mig = migration if migration is not None else Migration(cm)
    placed = mig.placed
    w_mig = scn.objective.migration
    links = scn.links
    changes = changes_from(base, scn) if base is not None else None
    old_records: dict[str, AppRecord] = {}
    if changes is not None:
        assert base is not None
        dirty_devices, dirty_links = changes
        # An app's own checks read its cost, which is the very object here, and its hosts'
        # tiers: they are redone on the devices whose tier changed (every pack's level
        # moves between two re-plans; the tiers hardly ever do).
        tiers = {d.id: d.tier for d in base.scenario.devices} if base.scenario else {}
        changed_devices = {d for d in dirty_devices if cm.devices[d].tier != tiers.get(d)}
        util = dict(base.utilization)
        mem = dict(base.memory_mb)
        power = dict(base.power_w)
        mbit = list(base.link_mbit)
        old_records = base.records
    else:
        dirty_devices, dirty_links = set(), set()
        changed_devices = set()
        util = dict.fromkeys(cm.devices, 0.0)
        mem = dict.fromkeys(cm.devices, 0.0)
        power = dict.fromkeys(cm.devices, 0.0)
        mbit = [0.0] * len(links)

    def share(rec: AppRecord, sign: float) -> None:
        c, rate = rec.cost, rec.app.rate_rps * sign
        for d, sec in c.compute_s.items():
            util[d] += rate * sec
        for d, mb in c.memory_mb.items():
            mem[d] += sign * mb
        for d, j in c.joules.items():
            power[d] += rate * j
        for k, mb in c.link_mb.items():
            mbit[k] += rate * mb * 8.0
        dirty_devices.update(c.compute_s, c.memory_mb, c.joules)
        dirty_links.update(c.link_mb)

    violations: list[Reason] = []
    records: dict[str, AppRecord] = {}
    taken_out: set[str] = set()
    objective = 0.0
    # Read once: the loop runs over every app of a fleet at every re-plan, mostly to find
    # each the very record of `base`.
    placement_of, old_of, placed_at = placements.get, old_records.get, placed.get
    for app in scn.apps:
        app_id = app.id
        p = placement_of(app_id)
        old = old_of(app_id)
        if p is None:
            if require_all:
                violations.append(_shape(app, "not placed"))
            if old is not None:
                share(old, -1.0)
                taken_out.add(app_id)
            continue
        c = cached(cache, app_id, p)
        same = old is not None and (old.placement is p or old.placement == p)
        if old is not None and same and c is old.cost and old.app is app:
            # The plan in force's own placement moves nothing (thousands of fixed apps).
            m = 0.0 if placed_at(app_id) is p else app_migration(mig, app, p)
            rec = old
            # A changed device may have changed tier: the app's own checks are redone.
            recheck = bool(changed_devices) and not changed_devices.isdisjoint(
                p.blocks or p.stages or ()
            )
            if recheck or m != old.migration_mb:
                term = old.term if m == old.migration_mb else cm.weighted(app, c) + w_mig * m
                found = app_violations(cm, app, p, c) if recheck else old.violations
                rec = AppRecord(app, p, c, m, term, found)
        else:
            if old is not None:
                share(old, -1.0)
                taken_out.add(app_id)
            made = app_record(cm, app, p, mig, cache, c)
            if not isinstance(made, AppRecord):
                violations.extend(made)
                continue
            rec = made
            share(rec, 1.0)
        records[app_id] = rec
        objective += rec.term
        violations.extend(rec.violations)
    for app_id, old in old_records.items():
        if app_id not in records and app_id not in taken_out:
            share(old, -1.0)

    cap = scn.max_utilization
    if changes is not None:
        assert base is not None
        dev_viol = dict(base.device_violations)
        link_viol = dict(base.link_violations)
        link_util = dict(base.link_utilization)
        check_devices: Iterable[str] = dirty_devices
        check_links: Iterable[int] = dirty_links
    else:
        dev_viol, link_viol, link_util = {}, {}, {}
        check_devices, check_links = cm.devices, range(len(links))
    for d in check_devices:
        dev, found = cm.devices[d], []
        if not within(util[d], cap):
            found.append(
                Reason(Code.COMPUTE, f"device {d}: compute utilization {util[d]:.4f} > {cap}")
            )
        if not within(mem[d], dev.memory_mb):
            found.append(
                Reason(Code.MEMORY, f"device {d}: memory {mem[d]:.2f} MB > {dev.memory_mb} MB")
            )
        limit = cm.battery_limit_w(d)
        if not battery_within(power[d], limit):
            found.append(
                Reason(
                    Code.BATTERY,
                    f"device {d}: battery: {power[d]:.4f} W exceeds the {limit:.4f} W its "
                    f"battery pays for {scn.horizon_h:g} h beside its idle draw",
                )
            )
        if found:
            dev_viol[d] = found
        else:
            dev_viol.pop(d, None)
    for k in check_links:
        u = link_util[k] = mbit[k] / links[k].mbps
        if not link_within(mbit[k], links[k].mbps, cap):
            link = links[k]
            link_viol[k] = Reason(
                Code.BANDWIDTH, f"link {link.a}-{link.b}: bandwidth utilization {u:.4f} > {cap}"
            )
        else:
            link_viol.pop(k, None)
    if dev_viol:
        for d in cm.devices:
            violations.extend(dev_viol.get(d, ()))
    if link_viol:
        violations.extend(link_viol[k] for k in sorted(link_viol))
    return Evaluation(
        objective,
        {a: r.cost for a, r in records.items()},
        {a: r.migration_mb for a, r in records.items()},
        util,
        mem,
        power,
        link_util,
        violations,
        scenario=scn,
        records=records,
        link_mbit=mbit,
        device_violations=dev_viol,
        link_violations=link_viol,
        changed_devices=dirty_devices if changes is not None else None,
        changed_links=dirty_links if changes is not None else None,
        base=base if changes is not None else None,
    )
