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
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from solver.scenario import Scenario

Num = TypeVar("Num", float, NDArray[np.float64])

# rtt sums are compared after rounding, so that 3.6 + 12.9 and 12.9 + 3.6 tie as they should.
_RTT_DIGITS = 9


def transfer_ms(rtt_ms: Num, mbps: Num, mb: float | Num) -> Num:
    """Milliseconds to send `mb` MB over a route: half its rtt, then 8 * mb Mbit at its
    `mbps` (floats, or numpy arrays of routes)."""
    return rtt_ms / 2.0 + 8000.0 * mb / mbps


@dataclass(frozen=True, slots=True)
class Route:
    path: tuple[str, ...]
    links: tuple[int, ...]  # indices into Scenario.links
    mbps: float
    rtt_ms: float
    j_per_mb: float

    def seconds(self, mb: float) -> float:
        return transfer_ms(self.rtt_ms, self.mbps, mb) / 1000.0


class _Search:
    """One source's Dijkstra, paused between calls: settled nodes have their final route."""

    __slots__ = ("best", "exact_rtt", "heap", "settled", "via")

    def __init__(self, src: str) -> None:
        start = (0.0, 0, (src,))
        self.best: dict[str, tuple[float, int, tuple[str, ...]]] = {src: start}
        self.via: dict[str, tuple[int, ...]] = {src: ()}
        self.exact_rtt: dict[str, float] = {src: 0.0}
        self.heap: list[tuple[float, int, tuple[str, ...]]] = [start]
        self.settled: set[str] = set()


class RouteTable:
    """Lazily computed routes: one Dijkstra per source, run only as far as it is asked.

    `route(a, b)` settles nodes from `a` until `b` is settled and keeps the search paused
    there, so a fleet of thousands of devices pays only for the neighbourhoods it uses.
    A node's key is final when it is settled, whatever order later calls come in, so the
    routes are exactly those of a full search (same tie-breaking).

    `refigured` makes the table of a scenario that differs only in links' `mbps` or
    `j_per_mb`: paths depend on rtt alone, so it shares the searches and every route that
    does not cross a changed link, and rebuilds only the figures of those that do.
    """

    # A refigured table looks routes up in its parent; past this many generations it
    # copies them instead, so that a long chain of re-solves neither slows lookups nor
    # keeps every old table alive.
    _MAX_DEPTH = 4

    def __init__(self, scenario: Scenario) -> None:
        self._links = scenario.links
        self._adj: dict[str, list[tuple[str, int]]] = {d.id: [] for d in scenario.devices}
        for k, link in enumerate(scenario.links):
            self._adj[link.a].append((link.b, k))
            self._adj[link.b].append((link.a, k))
        for edges in self._adj.values():
            edges.sort()
        self._from: dict[str, _Search] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        self._parent: RouteTable | None = None
        self._stale: frozenset[int] = frozenset()  # links whose figures differ from the parent's
        self._depth = 0

    def refigured(self, scenario: Scenario, changed: frozenset[int]) -> RouteTable:
        """The table of `scenario`, whose links are this table's with only the figures of
        the links `changed` (indices) replaced: same endpoints, same rtt, same order."""
        new = RouteTable.__new__(RouteTable)
        new._links = scenario.links
        new._adj = self._adj
        new._from = self._from
        new._routes = {}
        if self._depth + 1 > self._MAX_DEPTH:
            new._parent, new._stale, new._depth = None, frozenset(), 0
            new._routes = {
                key: r for key, r in self._all_cached().items() if not changed.intersection(r.links)
            }
        else:
            new._parent, new._stale, new._depth = self, changed, self._depth + 1
        return new

    def _all_cached(self) -> dict[tuple[str, str], Route]:
        if self._parent is None:
            return dict(self._routes)
        out = {
            key: r
            for key, r in self._parent._all_cached().items()
            if not self._stale.intersection(r.links)
        }
        out.update(self._routes)
        return out

    def _cached(self, key: tuple[str, str]) -> Route | None:
        r = self._routes.get(key)
        if r is None and self._parent is not None:
            r = self._parent._cached(key)
            if r is not None:
                if self._stale.intersection(r.links):
                    return None
                self._routes[key] = r
        return r

    def route(self, a: str, b: str) -> Route | None:
        """The route from a to b, or None when b cannot be reached. a == b is not a route."""
        key = (a, b)
        r = self._routes.get(key)
        if r is not None:
            return r
        if self._parent is not None:
            r = self._cached(key)
            if r is not None:
                return r
        search = self._from.get(a)
        if search is None:
            search = self._from[a] = _Search(a)
        settled = search.settled
        while b not in settled and search.heap:
            self._settle_next(search)
        if b not in settled or b == a:
            return None
        return self._build(search, a, b)

    def reachable(self, a: str) -> dict[str, Route]:
        search = self._from.get(a)
        if search is None:
            search = self._from[a] = _Search(a)
        while search.heap:
            self._settle_next(search)
        out: dict[str, Route] = {}
        for node in search.settled:
            if node != a:
                r = self.route(a, node)
                assert r is not None
                out[node] = r
        return out

    def _build(self, s: _Search, a: str, node: str) -> Route:
        # Built only when asked: most settled nodes are never a query's target.
        links = s.via[node]
        r = self._routes[(a, node)] = Route(
            path=s.best[node][2],
            links=links,
            mbps=min(self._links[k].mbps for k in links),
            rtt_ms=sum(self._links[k].rtt_ms for k in links),
            j_per_mb=sum(self._links[k].j_per_mb for k in links),
        )
        return r

    def _settle_next(self, s: _Search) -> None:
        key = heapq.heappop(s.heap)
        path = key[2]
        node = path[-1]
        best = s.best
        # Keys are only ever replaced by strictly smaller ones, so identity tells stale.
        if node in s.settled or best[node] is not key:
            return
        s.settled.add(node)
        rtt0 = s.exact_rtt[node]
        via0 = s.via[node]
        hops = key[1] + 1
        links = self._links
        for nxt, k in self._adj[node]:
            if nxt in s.settled:
                continue
            rtt = rtt0 + links[k].rtt_ms
            cand = (round(rtt, _RTT_DIGITS), hops, (*path, nxt))
            cur = best.get(nxt)
            if cur is None or cand < cur:
                best[nxt] = cand
                s.exact_rtt[nxt] = rtt
                s.via[nxt] = (*via0, k)
                heapq.heappush(s.heap, cand)
