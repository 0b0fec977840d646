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
rounding), the verdict is that side's; otherwise the evaluator judges the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import solver
from solver.evaluate import battery_within, link_within

Link = tuple[str, str]
_ROOM = 1e-6  # relative room, far above float rounding, before a bound decides a verdict
SloJudge = Callable[[list[str]], dict[str, tuple[bool, float]]]  # app -> (over, worst ms)


@dataclass
class Verdicts:
    power_w: float  # the plan's inference power (W), as the evaluator sums it
    carbon_g_s: float
    fixed: int  # broken constraints that no bandwidth or battery level can flip
    unserved: int  # apps of the scenario the plan does not serve
    fixed_over: int  # apps over their SLO that cross no traced link
    cap: float
    link_mbit: dict[Link, float]  # traced links up: Mbit/s the plan sends over each
    link_over: dict[Link, bool]
    app_links: dict[str, tuple[Link, ...]]  # apps with an SLO crossing traced links
    apps_on: dict[Link, list[str]]
    app_over: dict[str, bool]
    app_ref: dict[str, tuple[float, float, tuple[float, ...]]]  # worst ms, SLO ms, figures
    device_power: dict[str, float]  # devices with a pack: the plan's power on each
    battery_over: dict[str, bool]
    cache: dict[tuple[str, tuple[float, ...]], bool] = field(default_factory=dict)

    @property
    def rates(self) -> tuple[float, float, int, int]:
        """(W, g/s, constraints broken, apps over their SLO or not served) of now."""
        over = sum(self.app_over.values())
        broken = self.fixed + sum(self.link_over.values()) + over
        broken += sum(self.battery_over.values())
        return self.power_w, self.carbon_g_s, broken, self.unserved + self.fixed_over + over

    def links_moved(
        self,
        now: Mapping[Link, float],
        moved: Iterable[Link],
        slo_over: SloJudge,
    ) -> None:
        """Re-judge what the bandwidths `now` of the `moved` links can flip. `slo_over`
        judges the SLO of apps that neither the cache nor the bound decides, on the
        scenario of now."""
        apps: set[str] = set()
        for key in moved:
            mbit = self.link_mbit.get(key)
            if mbit is None:
                continue  # not in the scenario of now (an end is down)
            self.link_over[key] = not link_within(mbit, now[key], self.cap)
            apps.update(self.apps_on.get(key, ()))
        missing: list[str] = []
        for app in sorted(apps):
            figures = tuple(now[k] for k in self.app_links[app])
            hit = self.cache.get((app, figures))
            if hit is None:
                hit = self._bound(app, figures)
            if hit is None:
                missing.append(app)
            else:
                self.app_over[app] = hit
        if missing:
            for app, (over, worst) in slo_over(missing).items():
                figures = tuple(now[k] for k in self.app_links[app])
                self.app_over[app] = self.cache[(app, figures)] = over
                self.app_ref[app] = (worst, self.app_ref[app][1], figures)

    def _bound(self, app: str, figures: tuple[float, ...]) -> bool | None:
        """The app's verdict when the bound decides it (see the module's docstring)."""
        worst, slo, ref = self.app_ref[app]
        ratios = [r / m for r, m in zip(ref, figures, strict=True)]
        if worst * max(1.0, *ratios) * (1.0 + _ROOM) <= slo:
            return False
        if worst * min(1.0, *ratios) * (1.0 - _ROOM) > slo * (1.0 + _ROOM):
            return True
        return None

    def battery_moved(self, device: str, limit_w: float | None) -> None:
        """Re-judge a pack's constraint against what it pays for now (`limit_w`)."""
        if device in self.device_power:
            self.battery_over[device] = not battery_within(self.device_power[device], limit_w)


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
    link_mbit = {index[k]: ev.link_mbit[k] for k in index}
    link_over = {index[k]: k in ev.link_violations for k in index}
    over = {r.app for r in ev.found if r.code == solver.Code.SLO}
    app_links: dict[str, tuple[Link, ...]] = {}
    app_ref: dict[str, tuple[float, float, tuple[float, ...]]] = {}
    apps_on: dict[Link, list[str]] = {}
    for rec in ev.records.values():
        if rec.app.slo_ms is None:
            continue
        links = tuple(dict.fromkeys(index[k] for k in rec.cost.link_mb if k in index))
        if links:
            app_links[rec.app.id] = links
            figures = tuple(traced[k] for k in links)
            app_ref[rec.app.id] = (rec.cost.worst_ms, rec.app.slo_ms, figures)
            for key in links:
                apps_on.setdefault(key, []).append(rec.app.id)
    app_over = {a: a in over for a in app_links}
    packs = {d.id for d in scn.devices if d.battery is not None}
    battery_over = {
        d: any(r.code == solver.Code.BATTERY for r in ev.device_violations.get(d, ()))
        for d in packs
    }
    flippable = sum(link_over.values()) + sum(app_over.values()) + sum(battery_over.values())
    records = ev.records.values()
    return Verdicts(
        power_w=sum(r.app.rate_rps * r.cost.energy_j for r in records),
        carbon_g_s=sum(r.app.rate_rps * r.cost.carbon_g for r in records),
        fixed=len(ev.found) - flippable,
        unserved=len(set(served) - ev.records.keys()),
        fixed_over=len(over - app_links.keys()),
        cap=scn.max_utilization,
        link_mbit=link_mbit,
        link_over=link_over,
        app_links=app_links,
        apps_on=apps_on,
        app_over=app_over,
        app_ref=app_ref,
        device_power={d: ev.power_w.get(d, 0.0) for d in packs},
        battery_over=battery_over,
    )


__all__ = ["Verdicts", "verdicts_of"]
