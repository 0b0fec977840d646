"""An app's worst-case latency as terms of the Mbit/s of the routes it crosses, the traced
links among them read at each moment (`simulate.scoring.Verdicts._summed`)."""

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


__all__ = ["Terms", "TermsOf", "terms_on"]
