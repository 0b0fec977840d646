"""Routes between devices, by the contract's rule.

Least total `rtt_ms`; ties: fewer links, then the lexicographically smallest sequence of
device ids. The tuple `(rtt, hops, path)` orders paths exactly that way, and every prefix
of a best path is itself best under that order, so Dijkstra with tuple keys is exact.
Routes are per ordered pair: on a tie the sequence read from `a` may differ from the one
read from `b`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from solver.scenario import Scenario

# rtt sums are compared after rounding, so that 3.6 + 12.9 and 12.9 + 3.6 tie as they should.
_RTT_DIGITS = 9


@dataclass(frozen=True, slots=True)
class Route:
    path: tuple[str, ...]
    links: tuple[int, ...]  # indices into Scenario.links
    mbps: float
    rtt_ms: float
    j_per_mb: float

    def seconds(self, mb: float) -> float:
        return self.rtt_ms / 2.0 / 1000.0 + 8.0 * mb / self.mbps


class RouteTable:
    """Lazily computed routes; one Dijkstra per source, run only when first asked."""

    def __init__(self, scenario: Scenario) -> None:
        self._links = scenario.links
        self._adj: dict[str, list[tuple[str, int]]] = {d.id: [] for d in scenario.devices}
        for k, link in enumerate(scenario.links):
            self._adj[link.a].append((link.b, k))
            self._adj[link.b].append((link.a, k))
        for edges in self._adj.values():
            edges.sort()
        self._from: dict[str, dict[str, Route]] = {}

    def route(self, a: str, b: str) -> Route | None:
        """The route from a to b, or None when b cannot be reached. a == b is not a route."""
        table = self._from.get(a)
        if table is None:
            table = self._from[a] = self._dijkstra(a)
        return table.get(b)

    def reachable(self, a: str) -> dict[str, Route]:
        table = self._from.get(a)
        if table is None:
            table = self._from[a] = self._dijkstra(a)
        return table

    def _dijkstra(self, src: str) -> dict[str, Route]:
        best: dict[str, tuple[float, int, tuple[str, ...]]] = {src: (0.0, 0, (src,))}
        via: dict[str, tuple[int, ...]] = {src: ()}
        exact_rtt: dict[str, float] = {src: 0.0}
        heap: list[tuple[float, int, tuple[str, ...]]] = [(0.0, 0, (src,))]
        done: set[str] = set()
        while heap:
            key = heapq.heappop(heap)
            node = key[2][-1]
            if node in done or best[node] != key:
                continue
            done.add(node)
            for nxt, k in self._adj[node]:
                if nxt in done:
                    continue
                link = self._links[k]
                rtt = exact_rtt[node] + link.rtt_ms
                cand = (round(rtt, _RTT_DIGITS), key[1] + 1, (*key[2], nxt))
                cur = best.get(nxt)
                if cur is None or cand < cur:
                    best[nxt] = cand
                    exact_rtt[nxt] = rtt
                    via[nxt] = (*via[node], k)
                    heapq.heappush(heap, cand)
        routes: dict[str, Route] = {}
        for node, (_, _, path) in best.items():
            if node == src:
                continue
            links = via[node]
            routes[node] = Route(
                path=path,
                links=links,
                mbps=min(self._links[k].mbps for k in links),
                rtt_ms=sum(self._links[k].rtt_ms for k in links),
                j_per_mb=sum(self._links[k].j_per_mb for k in links),
            )
        return routes
