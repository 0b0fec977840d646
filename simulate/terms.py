"""An app's worst-case latency as terms of the Mbit/s of the routes it crosses, the traced
links among them read at each moment (`simulate.scoring.Verdicts._summed`); and the least
Mbit/s of each at which the bound of `simulate.scoring` still finds the app within its SLO
(`floors_of`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

from solver.costs import CostModel
from solver.evaluate import latency_terms
from solver.plan import Placement

Link = tuple[str, str]
# An app's worst ms: fixed + sum of k / min(base, the traced links' Mbit/s) over its routes.
Terms = tuple[float, list[tuple[float, float, tuple[Link, ...]]]]
TermsOf = Callable[[str], Terms]
ROOM = 1e-6  # relative room, far above float rounding, before a bound decides a verdict


def terms_on(cm: CostModel, traced: Collection[Link], app: str, p: Placement) -> Terms:
    """`latency_terms` of `app` at `p`, each route as its untraced links' least Mbit/s
    and its `traced` links (read at each moment)."""
    fixed, routes = latency_terms(cm, app, p)
    links = cm.scenario.links
    parts = []
    for k, r in routes:
        ends = {(links[i].a, links[i].b): links[i].mbps for i in r.links}
        rest = [m for e, m in ends.items() if e not in traced]
        parts.append((k, min(rest, default=math.inf), tuple(e for e in ends if e in traced)))
    return fixed, parts


def floors_of(worst: float, slo: float, figures: tuple[float, ...]) -> tuple[float, ...] | None:
    """The Mbit/s each traced link of an app must carry for the bound of
    `simulate.scoring.Verdicts._bound` to find it within its SLO (its worst ms at
    `figures`: `worst`): the bound holds while
    `worst * max(1, figure / m) * (1 + ROOM) <= slo` for every link's Mbit/s m, so while
    m >= figure * worst * (1 + ROOM) / slo. A millionth of a millionth above that covers the
    rounding of both sides. None when the bound finds it over at its own figures."""
    if not worst * (1.0 + ROOM) <= slo:
        return None
    scale = worst * (1.0 + ROOM) / slo * (1.0 + 1e-12)
    return tuple(f * scale for f in figures)


__all__ = ["ROOM", "Terms", "TermsOf", "floors_of", "terms_on"]
