"""The evaluator's last word on the plan in force, kept up to date as bandwidths and
battery levels move, without evaluating the whole plan again.

With the plan and the fleet's shape fixed, a traced bandwidth or a battery level can
change only three kinds of verdict (scenario-v1; `solver.evaluate`):
- a traced link's bandwidth constraint: the Mbit/s the plan sends over it
  (`Evaluation.link_mbit`, which reads no bandwidth) against its bandwidth;
- the SLO of an app whose transfers cross a traced link: its worst-case latency has
  transfer terms that read the bandwidths of the links on their routes;
- a pack's battery constraint: the plan's power on the device (which reads no battery
  level) against what the pack pays for over the horizon.
Energy, carbon, compute, memory and every other verdict read neither. `Verdicts` splits
a full evaluation into those three kinds and the rest, and re-judges only what moved, with
the evaluator's own checks (`link_within`, `battery_within`, `app_cost` and
`app_violations`). An app's SLO verdict is a function of the bandwidths of the traced
links it crosses (its placement and routes fixed): it is cached under those exact figures,
and the traces loop, so after their first lap the verdicts of a fixed plan are looked up.

Between, a bound decides most verdicts without the evaluator. An app's worst case is
compute and RTT terms, which no bandwidth moves, plus transfer terms `8 MB / route
Mbit/s`, a route's Mbit/s being the least of its links'. When the traced links it crosses
go from m to m' (the others stay), every transfer term is scaled by a factor between
min(m/m') and max(m/m') over those links and every other term by 1, so the worst case of
now lies within worst * [min(1, min m/m'), max(1, max m/m')] of the last one the evaluator
computed for it. When that whole interval is on one side of the SLO (with room for float
rounding), the verdict is that side's. Turned around, the bound gives an app within its
SLO a floor on each link it crosses, the least Mbit/s at which it still finds it within: a
link that moves and stays at or above every floor there leaves its apps within unjudged
(a day of a 200-device fleet judged 15 apps a step, 99.6% of them within by the bound:
bench/RESULTS.md). An app the bound leaves undecided is judged from its worst case summed
at the figures of now from its terms (`solver.evaluate.latency_terms`, once per placement:
the part no bandwidth moves, and per route the ms at 1 Mbit/s over the route's Mbit/s),
when that is clear of its SLO by far more than rounding; only an app within a millionth of
it goes to the evaluator (a day of continuum sent it 31,467 apps before, none since).

A plan that changes only some apps' placements, on the same fleet, is put in force the
same way (`Verdicts.apps_moved`): only those apps are costed and checked (on the scenario
of now, by the evaluator's own `app_record`), and only the devices and links their old
and new costs touch are summed again and re-checked. A device's or link's sum is made
afresh from the apps on it, in the scenario's order, the very additions the whole
evaluation makes, so the figures are the evaluator's to the last bit, not a running
total that drifts (tests/simulate/test_scoring.py compares them at every step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import solver
from simulate.terms import ROOM, Terms, TermsOf, floors_of
from solver.costs import Cost, CostModel
from solver.evaluate import AppRecord, battery_within, link_within, within
from solver.plan import Placement

Link = tuple[str, str]
SloJudge = Callable[[list[str]], dict[str, tuple[bool, float]]]  # app -> (over, worst ms)


@dataclass
class Verdicts:
    power_w: float  # the plan's inference power (W), as the evaluator sums it
    carbon_g_s: float
    fixed: int  # broken constraints that no bandwidth or battery level can flip
    unserved: int  # apps of the scenario the plan does not serve
    cap: float
    link_low: dict[Link, float]  # traced links up: the least Mbit/s within the plan's there
    link_over: dict[Link, bool]
    app_links: dict[str, tuple[Link, ...]]  # apps with an SLO crossing traced links
    apps_on: dict[Link, list[str]]
    app_over: dict[str, bool]
    app_ref: dict[str, tuple[float, float, tuple[float, ...]]]  # worst ms, SLO ms, figures
    device_power: dict[str, float]  # devices with a pack: the plan's power on each
    battery_over: dict[str, bool]
    # What a change of some apps' placements needs (`apps_moved`): each served app's
    # record, the evaluator's sums by device and link, which apps each one holds, and
    # the verdicts no bandwidth or battery flips, by what they belong to.
    records: dict[str, AppRecord]
    order: dict[str, int]  # app id -> its place in the scenario's apps
    # Each served app's W and g/s, in the order of `records` (the evaluator's order).
    energy: list[float]
    carbon: list[float]
    at: dict[str, int]  # app id -> its place in `records`
    traced_at: dict[int, Link]  # traced links up, by their index in the scenario
    util: dict[str, float]
    mem: dict[str, float]
    power: dict[str, float]
    mbit: list[float]
    on_device: dict[str, set[str]]
    on_link: dict[int, set[str]]
    app_fixed: dict[str, int]
    device_fixed: dict[str, tuple[solver.Code, ...]]  # compute, memory: what is broken there
    link_fixed: dict[int, bool]
    link_names: tuple[str, ...]  # "a~b" by index in the scenario
    unlisted: tuple[tuple[str, str], ...]  # (code, app) broken by apps not served: fixed too
    over_fixed: set[str]  # apps over their SLO that cross no traced link
    # An app's SLO verdict by its placement, then the figures of the traced links it
    # crosses; `judged_at`: each app's entry for the placement of its record (hashing a
    # placement at every step that moved its links was a tenth of `links_moved`).
    cache: dict[Placement, dict[tuple[float, ...], bool]] = field(default_factory=dict)
    judged_at: dict[str, dict[tuple[float, ...], bool]] = field(default_factory=dict)
    # Costs of placements made since, by the traced links their transfers cross and those
    # links' figures: on a fleet of one shape, a cost reads nothing else that moves.
    costs: dict[Placement, tuple[tuple[int, ...], dict[tuple[float, ...], Cost]]] = field(
        default_factory=dict
    )
    # The bound, turned around (`floors_of`): an app within its SLO whose traced links
    # each carry at least its floor there is within it still, by the bound. `link_floor`:
    # the highest floor of the apps on each traced link; `unsure`: the apps on each that are
    # over their SLO, or under a floor (or have none). A link that moves and stays at or
    # above its highest floor re-judges its unsure apps alone.
    floors: dict[str, tuple[float, ...] | None] = field(default_factory=dict)
    settled: dict[str, bool] = field(default_factory=dict)  # sure at each app's last `_settle`
    link_floor: dict[Link, float] = field(default_factory=dict)
    unsure: dict[Link, set[str]] = field(default_factory=dict)
    # Worst ms as terms of the routes' Mbit/s by placement (`TermsOf`; on this fleet no
    # figure moves a route's path), asked of the caller when first needed.
    terms: dict[Placement, Terms] = field(default_factory=dict)
    # ("app", id), ("device", id), ("traced", link), ("link", k): moved since the ledger read
    changed: set[tuple[str, Any]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for app, (_, _, figures) in self.app_ref.items():
            self._refer(app)
            self._settle(app, figures)

    @property
    def rates(self) -> tuple[float, float, int, int]:
        """(W, g/s, constraints broken, apps over their SLO or not served) of now."""
        over = sum(self.app_over.values())
        broken = self.fixed + over + sum(self.link_over.values()) + sum(self.battery_over.values())
        return self.power_w, self.carbon_g_s, broken, self.unserved + len(self.over_fixed) + over

    def links_moved(
        self,
        now: Mapping[Link, float],
        moved: Iterable[Link],
        slo_over: SloJudge,
        terms_of: TermsOf | None = None,
    ) -> None:
        """Re-judge what the bandwidths `now` of the `moved` links can flip. `slo_over`
        judges the SLO of apps that neither the cache nor the bound decides, on the
        scenario of now; before it, `terms_of`, when given, an app's worst ms as terms of
        its routes' Mbit/s (`_summed`)."""
        apps: set[str] = set()
        apps_on, link_floor, unsure = self.apps_on, self.link_floor, self.unsure
        for key in moved:
            low = self.link_low.get(key)
            if low is None:
                continue  # not in the scenario of now (an end is down)
            mbps = now[key]
            if self.link_over[key] != (over := mbps < low):  # `link_within`'s verdict
                self.changed.add(("traced", key))
                self.link_over[key] = over
            on = apps_on.get(key)
            if on:
                # At or above every floor there, the apps known within stay within.
                apps.update(on if mbps < link_floor[key] else unsure[key])
        missing: list[str] = []
        judged_at = self.judged_at
        judged: list[tuple[str, tuple[float, ...]]] = []
        for app in sorted(apps):
            figures = tuple(now[k] for k in self.app_links[app])
            judged.append((app, figures))
            mine = judged_at.get(app)
            if mine is None:
                mine = judged_at[app] = self.cache.setdefault(self.records[app].placement, {})
            hit = mine.get(figures)
            if hit is None:
                hit = self._bound(app, figures)
                if hit is None and terms_of is not None:
                    hit = self._summed(app, now, terms_of)
                    if hit is not None:
                        mine[figures] = hit  # the evaluator's verdict, as `_summed` says
            if hit is None:
                missing.append(app)
            else:
                if self.app_over[app] != hit:
                    self.changed.add(("app", app))
                    self.app_over[app] = hit
        if missing:
            for app, (over, worst) in slo_over(missing).items():
                figures = tuple(now[k] for k in self.app_links[app])
                judged_at[app][figures] = over
                self._flip(self.app_over, "app", app, over)
                self.app_ref[app] = (worst, self.app_ref[app][1], figures)
                self._refer(app)
        for app, figures in judged:
            self._settle(app, figures)

    def _flip(self, verdicts: dict[Any, Any], tag: str, key: Any, over: Any) -> None:
        if verdicts.get(key) != over:
            self.changed.add((tag, key))
        verdicts[key] = over

    def _bound(self, app: str, figures: tuple[float, ...]) -> bool | None:
        """The app's verdict when the bound decides it (see the module's docstring)."""
        worst, slo, ref = self.app_ref[app]
        ratios = [r / m for r, m in zip(ref, figures, strict=True)]
        if worst * max(1.0, *ratios) * (1.0 + ROOM) <= slo:
            return False
        if worst * min(1.0, *ratios) * (1.0 - ROOM) > slo * (1.0 + ROOM):
            return True
        return None

    def _summed(self, app: str, now: Mapping[Link, float], terms_of: TermsOf) -> bool | None:
        """The app's verdict from its worst ms summed at the figures `now` (its terms,
        `terms_of`, once per placement), when that is clear of its SLO by far more than
        the rounding of another order of addition."""
        p = self.records[app].placement
        terms = self.terms.get(p)
        if terms is None:
            terms = self.terms[p] = terms_of(app)
        worst, parts = terms
        for k, base, keys in parts:
            mbps = min(base, *(now[key] for key in keys)) if keys else base
            worst += k / mbps if mbps > 0.0 else math.inf
        slo = self.app_ref[app][1]
        if worst * (1.0 - ROOM) > slo * (1.0 + ROOM):
            return True
        if worst * (1.0 + ROOM) <= slo:
            return False
        return None

    def _refer(self, app: str) -> None:
        """Take the floors of `app` from its reference (`floors_of`), and the highest
        floor of each link it crosses from those of the apps there."""
        self.floors[app] = floors_of(*self.app_ref[app])
        for key in self.app_links[app]:
            self._link_floor(key)

    def _link_floor(self, key: Link) -> None:
        highest = 0.0
        for app in self.apps_on.get(key, ()):
            floors = self.floors.get(app)
            if floors is not None:
                highest = max(highest, floors[self.app_links[app].index(key)])
        self.link_floor[key] = highest

    def _settle(self, app: str, figures: tuple[float, ...]) -> None:
        """Whether `app`, judged at `figures`, is known to stay within its SLO while each
        of its links stays at or above its floor: if not, it is unsure on every link."""
        floors = self.floors.get(app)
        sure = (
            floors is not None
            and not self.app_over[app]
            and all(f >= lo for f, lo in zip(figures, floors, strict=True))
        )
        if self.settled.get(app) is sure:
            return  # as the last time: its links' sets hold it as they should
        self.settled[app] = sure
        for key in self.app_links[app]:
            if sure:
                self.unsure.setdefault(key, set()).discard(app)
            else:
                self.unsure.setdefault(key, set()).add(app)

    def battery_moved(self, device: str, limit_w: float | None) -> None:
        """Re-judge a pack's constraint against what it pays for now (`limit_w`)."""
        if (w := self.device_power.get(device)) is not None:
            self._flip(self.battery_over, "device", device, not battery_within(w, limit_w))

    def apps_moved(
        self,
        cm: CostModel,
        moved: Mapping[str, AppRecord],
        now: Mapping[Link, float],
        limit_w: Callable[[str], float | None],
    ) -> set[str]:
        """Put in force the records `moved` (served apps placed elsewhere, made on `cm`,
        the scenario of now, whose traced links have the bandwidths `now`; the same fleet
        as the last whole evaluation) in place of theirs, and judge again what they touch.
        `limit_w`: what each pack pays for now (`cm`'s battery levels may be older).
        Returns the devices whose sums were made again."""
        devices: set[str] = set()
        links: set[int] = set()
        self.changed.update(("app", app) for app in moved)
        for app, rec in moved.items():
            kept = self.costs.get(rec.placement)
            if kept is None:
                kept = (tuple(k for k in rec.cost.link_mb if k in self.traced_at), {})
                self.costs[rec.placement] = kept
            kept[1].setdefault(tuple(now[self.traced_at[k]] for k in kept[0]), rec.cost)
            old = self.records[app]
            self._forget(app, old)
            self.records[app] = rec
            self._enter(app, rec, now)
            for c in (old.cost, rec.cost):
                devices.update(c.compute_s, c.memory_mb, c.joules)
                links.update(c.link_mb)
        cap = self.cap
        for d in devices:
            self._sum_device(d)
            broken = (solver.Code.COMPUTE,) * (not within(self.util[d], cap))
            broken += (solver.Code.MEMORY,) * (not within(self.mem[d], cm.devices[d].memory_mb))
            self.fixed += len(broken) - len(self.device_fixed.get(d, ()))
            self._flip(self.device_fixed, "device", d, broken)
            if d in self.device_power:
                self.device_power[d] = self.power[d]
                self.battery_moved(d, limit_w(d))
        scn_links = cm.scenario.links
        for k in links:
            self._sum_link(k)
            key = self.traced_at.get(k)
            if key is not None:
                self.link_low[key] = low = solver.least_within_mbps(self.mbit[k], cap)
                self._flip(self.link_over, "traced", key, now[key] < low)
            else:
                broken_link = not link_within(self.mbit[k], scn_links[k].mbps, cap)
                self.fixed += broken_link - self.link_fixed.get(k, False)
                self._flip(self.link_fixed, "link", k, broken_link)
        for app, rec in moved.items():
            k = self.at[app]
            self.energy[k] = rec.app.rate_rps * rec.cost.energy_j
            self.carbon[k] = rec.app.rate_rps * rec.cost.carbon_g
        # The same products added in the same order as the whole evaluation's sums.
        self.power_w, self.carbon_g_s = sum(self.energy), sum(self.carbon)
        return devices

    def cost_at(self, p: Placement, now: Mapping[Link, float]) -> Cost | None:
        """The cost of placement `p` when the traced links have the bandwidths `now`, if
        `apps_moved` had it at those figures before."""
        kept = self.costs.get(p)
        if kept is None:
            return None
        links, by_figures = kept
        return by_figures.get(tuple(now[self.traced_at[k]] for k in links))

    def _forget(self, app: str, rec: AppRecord) -> None:
        """Take an app's record out of the indexes and the fixed verdicts."""
        c = rec.cost
        for d in {*c.compute_s, *c.memory_mb, *c.joules}:
            self.on_device[d].discard(app)
        for k in c.link_mb:
            self.on_link[k].discard(app)
        links = self.app_links.pop(app, ())
        self.floors.pop(app, None)
        self.settled.pop(app, None)
        for key in links:
            self.apps_on[key].remove(app)
            self.unsure[key].discard(app)
            self._link_floor(key)
        self.app_over.pop(app, None)
        self.app_ref.pop(app, None)
        self.judged_at.pop(app, None)
        self.over_fixed.discard(app)
        self.fixed -= self.app_fixed.pop(app)

    def _enter(self, app: str, rec: AppRecord, now: Mapping[Link, float]) -> None:
        """Put an app's record into the indexes and the verdicts (judged on `now`)."""
        c = rec.cost
        for d in {*c.compute_s, *c.memory_mb, *c.joules}:
            self.on_device.setdefault(d, set()).add(app)
        for k in c.link_mb:
            self.on_link.setdefault(k, set()).add(app)
        over = any(r.code == solver.Code.SLO for r in rec.violations)
        links = _traced_links(rec, self.traced_at)
        if links:
            figures = tuple(now[k] for k in links)
            self.app_links[app] = links
            for key in links:
                self.apps_on.setdefault(key, []).append(app)
            assert rec.app.slo_ms is not None
            self.app_ref[app] = (c.worst_ms, rec.app.slo_ms, figures)
            mine = self.judged_at[app] = self.cache.setdefault(rec.placement, {})
            self.app_over[app] = mine[figures] = over
            self._refer(app)
            self._settle(app, figures)
        elif over:
            self.over_fixed.add(app)
        fixed = len(rec.violations) - (over and bool(links))
        self.app_fixed[app] = fixed
        self.fixed += fixed

    def _holding(self, apps: set[str]) -> list[AppRecord]:
        """The records of `apps`, in the scenario's order (the evaluator's order of sums)."""
        return [self.records[a] for a in sorted(apps, key=self.order.__getitem__)]

    def _sum_device(self, d: str) -> None:
        util = mem = power = 0.0
        for rec in self._holding(self.on_device.get(d, set())):
            c, rate = rec.cost, rec.app.rate_rps
            if d in c.compute_s:
                util += rate * c.compute_s[d]
            if d in c.memory_mb:
                mem += c.memory_mb[d]
            if d in c.joules:
                power += rate * c.joules[d]
        self.util[d], self.mem[d], self.power[d] = util, mem, power

    def _sum_link(self, k: int) -> None:
        mbit = 0.0
        for rec in self._holding(self.on_link.get(k, set())):
            mbit += rec.app.rate_rps * rec.cost.link_mb[k] * 8.0
        self.mbit[k] = mbit


def _traced_links(rec: AppRecord, traced_at: Mapping[int, Link]) -> tuple[Link, ...]:
    """The traced links an app with an SLO crosses, in the order of its transfers (none
    for an app without an SLO: no bandwidth flips anything of it)."""
    if rec.app.slo_ms is None:
        return ()
    return tuple(dict.fromkeys(traced_at[k] for k in rec.cost.link_mb if k in traced_at))


def unlisted(ev: solver.Evaluation) -> tuple[tuple[str, str], ...]:
    """What `ev` finds broken apart from its apps' records, devices and links: an app not
    served, or placed in a shape the fleet cannot run, has no record."""
    lists = [*(rec.violations for rec in ev.records.values()), *ev.device_violations.values()]
    listed = {id(r) for found in lists for r in found} | set(map(id, ev.link_violations.values()))
    return tuple((r.code.value, r.app or "") for r in ev.found if id(r) not in listed)


def verdicts_of(
    ev: solver.Evaluation, traced: Mapping[Link, float], served: Iterable[str]
) -> Verdicts:
    """Split a full evaluation (on the scenario whose traced links have the bandwidths
    `traced`) into what bandwidths and battery levels can flip and the rest. `served`:
    every app of that scenario."""
    scn = ev.scenario
    assert scn is not None
    index: dict[int, Link] = {}
    for k, lk in enumerate(scn.links):
        if (lk.a, lk.b) in traced:
            index[k] = (lk.a, lk.b)
    cap = scn.max_utilization
    link_low = {index[k]: solver.least_within_mbps(ev.link_mbit[k], cap) for k in index}
    link_over = {index[k]: k in ev.link_violations for k in index}
    over = {r.app for r in ev.found if r.code == solver.Code.SLO and r.app is not None}
    app_links: dict[str, tuple[Link, ...]] = {}
    app_ref: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    apps_on: dict[Link, list[str]] = {}
    on_device: dict[str, set[str]] = {}
    on_link: dict[int, set[str]] = {}
    app_fixed: dict[str, int] = {}
    for app, rec in ev.records.items():
        c = rec.cost
        for d in {*c.compute_s, *c.memory_mb, *c.joules}:
            on_device.setdefault(d, set()).add(app)
        for k in c.link_mb:
            on_link.setdefault(k, set()).add(app)
        links = _traced_links(rec, index)
        app_fixed[app] = len(rec.violations) - (app in over and bool(links))
        if links:
            assert rec.app.slo_ms is not None
            app_links[app] = links
            figures = tuple(traced[k] for k in links)
            app_ref[app] = (c.worst_ms, rec.app.slo_ms, figures)
            for key in links:
                apps_on.setdefault(key, []).append(app)
    app_over = {a: a in over for a in app_links}
    packs = {d.id for d in scn.devices if d.battery is not None}
    battery_over = {
        d: any(r.code == solver.Code.BATTERY for r in ev.device_violations.get(d, ()))
        for d in packs
    }
    flippable = sum(link_over.values()) + sum(app_over.values()) + sum(battery_over.values())
    energy = [r.app.rate_rps * r.cost.energy_j for r in ev.records.values()]
    carbon = [r.app.rate_rps * r.cost.carbon_g for r in ev.records.values()]
    return Verdicts(
        power_w=sum(energy),
        carbon_g_s=sum(carbon),
        fixed=len(ev.found) - flippable,
        unserved=len(set(served) - ev.records.keys()),
        cap=cap,
        link_low=link_low,
        link_over=link_over,
        app_links=app_links,
        apps_on=apps_on,
        app_over=app_over,
        app_ref=app_ref,
        device_power={d: ev.power_w.get(d, 0.0) for d in packs},
        battery_over=battery_over,
        records=dict(ev.records),
        order={a.id: k for k, a in enumerate(scn.apps)},
        energy=energy,
        carbon=carbon,
        at={a: k for k, a in enumerate(ev.records)},
        traced_at=index,
        util=dict(ev.utilization),
        mem=dict(ev.memory_mb),
        power=dict(ev.power_w),
        mbit=list(ev.link_mbit),
        on_device=on_device,
        on_link=on_link,
        app_fixed=app_fixed,
        device_fixed={
            d: tuple(r.code for r in found if r.code != solver.Code.BATTERY)
            for d, found in ev.device_violations.items()
        },
        link_fixed={k: True for k in ev.link_violations if k not in index},
        link_names=tuple(f"{lk.a}~{lk.b}" for lk in scn.links),
        unlisted=unlisted(ev),
        over_fixed=over - app_links.keys(),
    )


__all__ = ["Verdicts", "unlisted", "verdicts_of"]
