"""What the evaluator's last word on the plan in force still says as bandwidths move.

Energy and carbon do not depend on any link's bandwidth (scenario-v1: joules per MB and
compute); only two checks do, and both only grow as a bandwidth falls:
- a link's utilization is the Mbit/s the plan sends over it (`Evaluation.link_mbit`)
  over its bandwidth;
- an app's worst-case latency is compute and RTT terms, which a bandwidth does not move,
  plus transfer terms `8 MB / route Mbit/s`, where a route's Mbit/s is the least of its
  links'. When the links an app crosses go from m to m', every transfer term is scaled by
  a factor between min(m/m') and max(m/m') over those links, and the other terms by 1, so
  the new worst case lies within worst * [min(1, min ratio), max(1, max ratio)].
`Bounds` keeps these figures from the last evaluation; `matters` says whether the
bandwidths of now could have flipped any of its verdicts. When they cannot, the last
evaluation's totals and verdicts stand exactly, and the evaluator is not run again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import solver

Link = tuple[str, str]
_TOL = 1e-9  # the evaluator's own room for float rounding (solver.evaluate.within)


@dataclass
class _AppBound:
    worst_ms: float
    slo_ms: float
    over: bool  # the evaluation found it over its SLO
    links: tuple[Link, ...]  # the traced links it crosses


@dataclass
class Bounds:
    ref: dict[Link, float]  # each traced link's Mbit/s at the evaluation
    mbit: dict[Link, float]  # Mbit/s the plan sends over it
    cap: float
    broken: set[Link]  # traced links whose utilization the evaluation found too high
    apps_on: dict[Link, list[_AppBound]] = field(default_factory=dict)

    def matters(self, now: Mapping[Link, float], moved: set[Link]) -> bool:
        """Whether the bandwidths `now` of the `moved` links may change a verdict."""
        checked: set[int] = set()
        for key in moved:
            m = now[key]
            over = self.mbit.get(key, 0.0) / m > self.cap * (1.0 + _TOL)
            if over != (key in self.broken):
                return True
            for app in self.apps_on.get(key, ()):
                if id(app) in checked:
                    continue
                checked.add(id(app))
                ratios = [self.ref[k] / now[k] for k in app.links]
                if app.over:
                    if app.worst_ms * min(1.0, *ratios) <= app.slo_ms * (1.0 + _TOL):
                        return True
                elif app.worst_ms * max(1.0, *ratios) > app.slo_ms * (1.0 - _TOL):
                    return True
        return False


def bounds_of(ev: solver.Evaluation, traced: Mapping[Link, float]) -> Bounds:
    """The figures `Bounds.matters` needs, from an evaluation on the scenario whose traced
    links had the bandwidths `traced`."""
    scn = ev.scenario
    assert scn is not None
    index: dict[int, Link] = {}
    for k, lk in enumerate(scn.links):
        key = (lk.a, lk.b)
        if key in traced:
            index[k] = key
    mbit = {index[k]: ev.link_mbit[k] for k in index if k < len(ev.link_mbit)}
    broken = {index[k] for k in ev.link_violations if k in index}
    over = {r.app for r in ev.found if r.code == solver.Code.SLO}
    out = Bounds(dict(traced), mbit, scn.max_utilization, broken)
    for rec in ev.records.values():
        if rec.app.slo_ms is None:
            continue
        links = tuple(dict.fromkeys(index[k] for k in rec.cost.link_mb if k in index))
        if not links:
            continue
        app = _AppBound(rec.cost.worst_ms, rec.app.slo_ms, rec.app.id in over, links)
        for key in links:
            out.apps_on.setdefault(key, []).append(app)
    return out


__all__ = ["Bounds", "bounds_of"]
