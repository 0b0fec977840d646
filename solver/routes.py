"""Routes between devices, by the contract's rule.

Least total `rtt_ms`; ties: fewer links, then the lexicographically smallest sequence of
device ids. The tuple `(rtt, hops, path)` orders paths exactly that way, and every prefix
of a best path is itself best under that order, so Dijkstra with tuple keys is exact.
Routes are per ordered pair: on a tie the sequence read from `a` may differ from the one
read from `b`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from heapq import heappop, heappush
from operator import attrgetter
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from solver.scenario import Scenario
from solver.towards import towards

Num = TypeVar("Num", float, NDArray[np.float64])

_MBPS, _RTT, _JPM = attrgetter("mbps"), attrgetter("rtt_ms"), attrgetter("j_per_mb")

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


Adjacency = dict[str, list[tuple[str, int, float]]]


class _ShrunkAdjacency(Adjacency):
    """A shrunk table's adjacency: the parent's less what is gone, each device's list
    made when a search first reaches it (a lost device's re-solve reaches a few hundred
    of 10,000; making them all was a tenth of its time). Renumbering keeps the links'
    order, so each list stays sorted. A lost device reads as having no links. Past a
    few generations the parent's lists are copied, so that chains of re-solves stay
    short."""

    _MAX_DEPTH = 4

    def __init__(self, parent: Adjacency, renumber: Mapping[int, int]) -> None:
        super().__init__()
        depth = 1
        if isinstance(parent, _ShrunkAdjacency):
            depth = parent.depth + 1
            if depth > self._MAX_DEPTH:
                parent, depth = {d: parent[d] for d in list(parent.parent)}, 1
        self.depth: int = depth
        self.parent: Adjacency = parent
        self._renumber = renumber

    def __missing__(self, device: str) -> list[tuple[str, int, float]]:
        kept = self._renumber
        edges = [(nb, kept[k], rtt) for nb, k, rtt in self.parent[device] if k in kept]
        self[device] = edges
        return edges


class RouteTable:
    """Lazily computed routes: one Dijkstra per source, run only as far as it is asked.

    `route(a, b)` settles nodes from `a` until `b` is settled and keeps the search paused
    there, so a fleet of thousands of devices pays only for the neighbourhoods it uses.
    A node's key is final when it is settled, whatever order later calls come in, so the
    routes are exactly those of a full search (same tie-breaking).

    `refigured` makes the table of a scenario that differs only in links' `mbps` or
    `j_per_mb`: paths depend on rtt alone, so it shares the searches and, for a few
    generations, every route that does not cross a changed link; it rebuilds the figures
    of the others, from the searches, when asked.
    `shrunk` makes the table of a fleet that lost devices or links: it keeps every route
    that avoids them.
    """

    # A refigured table looks routes up in its parent; past this many generations it
    # starts afresh instead (a shrunk one copies them), so that a long chain of re-solves
    # neither slows lookups nor keeps every old table alive.
    _MAX_DEPTH = 4

    def __init__(self, scenario: Scenario) -> None:
        self._links = scenario.links
        self._columns: tuple[list[float], list[float], list[float]] | None = None
        # (neighbour, link index, link rtt): the rtt read once here, not per relaxation.
        self._adj: Adjacency = {d.id: [] for d in scenario.devices}
        for k, link in enumerate(scenario.links):
            self._adj[link.a].append((link.b, k, link.rtt_ms))
            self._adj[link.b].append((link.a, k, link.rtt_ms))
        for edges in self._adj.values():
            edges.sort()
        self._from: dict[str, _Search] = {}
        self._routes: dict[tuple[str, str], Route] = {}
        self._parent: RouteTable | None = None
        self._stale: frozenset[int] = frozenset()  # links whose figures differ from the parent's
        self._renumber: Mapping[int, int] | None = None  # parent link -> this one's, if shrunk
        self._depth = 0

    def refigured(self, scenario: Scenario, changed: frozenset[int]) -> RouteTable:
        """The table of `scenario`, whose links are this table's with only the figures of
        the links `changed` (indices) replaced: same endpoints, same rtt, same order."""
        new = RouteTable.__new__(RouteTable)
        new._links = scenario.links
        new._columns = None
        new._adj = self._adj
        new._from = self._from
        new._routes = {}
        new._renumber = None
        if self._depth + 1 > self._MAX_DEPTH:
            # Past a few generations the table starts afresh rather than copying its
            # parents' routes: the searches are shared, so a route asked again is rebuilt
            # from them with this table's figures (a few microseconds), and a fleet whose
            # traced links move every second asks again few of the thousands a copy would
            # make (in the simulator, copying was most of a step's time).
            new._parent, new._stale, new._depth = None, frozenset(), 0
            if self._renumber is not None:
                new._routes = {
                    key: r
                    for key, r in self._all_cached().items()
                    if not changed.intersection(r.links)
                }
        else:
            new._parent, new._stale, new._depth = self, changed, self._depth + 1
        return new

    def shrunk(self, scenario: Scenario, renumber: Mapping[int, int]) -> RouteTable:
        """The table of `scenario`, whose fleet is this one's less some devices or links,
        the others in the same order (link k is now `renumber[k]`). Taking paths away
        never makes another one better, so every route that avoids what is gone is still
        the route: it is kept (renumbered when first asked). Searches start afresh."""
        new = RouteTable.__new__(RouteTable)
        new._links = scenario.links
        new._columns = None
        new._adj = _ShrunkAdjacency(self._adj, renumber)
        new._from, new._routes = {}, {}
        new._parent, new._stale, new._renumber, new._depth = None, frozenset(), None, 0
        if self._depth + 1 > self._MAX_DEPTH:
            for key, r in self._all_cached().items():
                moved = self._moved(r, renumber)
                if moved is not None:
                    new._routes[key] = moved
        else:
            new._parent, new._renumber, new._depth = self, renumber, self._depth + 1
        return new

    @staticmethod
    def _moved(r: Route, renumber: Mapping[int, int]) -> Route | None:
        """`r` with its links renumbered, or None when one of them is gone."""
        try:
            links = tuple(renumber[k] for k in r.links)
        except KeyError:
            return None
        return Route(r.path, links, r.mbps, r.rtt_ms, r.j_per_mb)

    def _inherited(self, r: Route) -> Route | None:
        """A parent's route as this table has it, or None when it no longer holds."""
        if self._renumber is not None:
            return self._moved(r, self._renumber)
        return None if self._stale.intersection(r.links) else r

    def _all_cached(self) -> dict[tuple[str, str], Route]:
        if self._parent is None:
            return dict(self._routes)
        if self._renumber is None:
            return self._all_refigured(frozenset())
        out = {}
        for key, r in self._parent._all_cached().items():
            kept = self._inherited(r)
            if kept is not None:
                out[key] = kept
        out.update(self._routes)
        return out

    def _all_refigured(self, changed: frozenset[int]) -> dict[tuple[str, str], Route]:
        """`_all_cached` of a chain of refigured tables, less the routes that cross a link
        in `changed`, in one pass up the chain (not one copy of the whole table per
        generation): a route a table holds is held here unless a table below it changed
        one of its links, and the nearest table that holds a pair decides for it."""
        out: dict[tuple[str, str], Route] = {}
        seen: set[tuple[str, str]] = set()
        stale: frozenset[int] = changed
        t: RouteTable | None = self
        while t is not None:
            if t._renumber is not None:  # a shrunk table: its own rule, recursively
                routes = t._all_cached()
                t_parent = None
            else:
                routes, t_parent = t._routes, t._parent
            for key, r in routes.items():
                if key in seen:
                    continue
                seen.add(key)
                if not stale.intersection(r.links):
                    out[key] = r
            stale = stale | t._stale
            t = t_parent
        return out

    def _cached(self, key: tuple[str, str]) -> Route | None:
        r = self._routes.get(key)
        if r is None and self._parent is not None:
            r = self._parent._cached(key)
            if r is not None:
                r = self._inherited(r)
                if r is None:
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
        if a == b:
            return None
        # A device with a single link (most cameras) reaches everything through it, so
        # its routes are its neighbour's with that link added: in the contract's order
        # every candidate path shares the first hop, which changes neither rtt ranks, nor
        # hop ranks, nor the order of the sequences. One search per edge box then serves
        # its cameras, instead of one search per camera.
        stub = self._stub(a)
        if stub is not None:
            if stub[0] == b:
                return self._make(a, b, (a, b), (stub[1],))
            if self._stub(stub[0]) is not None:
                return None  # two devices linked only to each other reach nothing else
            inner = self.route(stub[0], b)
            if inner is None:
                return None
            return self._make(a, b, (a, *inner.path), (stub[1], *inner.links))
        stub = self._stub(b)
        if stub is not None:
            if stub[0] == a:
                return self._make(a, b, (a, b), (stub[1],))
            if self._stub(stub[0]) is not None:
                return None  # b and its neighbour are linked only to each other
            inner = self.route(a, stub[0])
            if inner is None:
                return None
            return self._make(a, b, (*inner.path, b), (*inner.links, stub[1]))
        search = self._from.get(a)
        if search is None:
            search = self._from[a] = _Search(a)
        settled = search.settled
        while b not in settled and search.heap:
            self._settle_next(search)
        if b not in settled:
            return None
        return self._build(search, a, b)

    def known_rtt(self, a: str) -> tuple[str, dict[str, float], float, float]:
        """What the searches so far know of route rtt from `a`, without searching further:
        `(origin, settled, offset, radius)`. Route rtt from `a` to d is `offset +
        settled[d]` for d in `settled` other than `a`, and at least `offset + radius` for
        every other d. `settled` is measured from the search `a`'s routes come from,
        `origin` (its neighbour, for a device with a single link, `offset` that link's
        rtt), so for any x and y in it the route rtt between them is at least
        `abs(settled[x] - settled[y])`. A new dict: the caller may keep it."""
        origin, offset = a, 0.0
        stub = self._stub(a)
        if stub is not None:
            origin, offset = stub[0], stub[2]
        search = self._from.get(origin)
        if search is None:
            return origin, {}, offset, 0.0
        exact = search.exact_rtt
        settled = {d: exact[d] for d in search.settled}
        # The heap's least key is no more than any unsettled node's (stale keys are only
        # ever larger than live ones or belong to settled nodes); keys are rounded.
        radius = search.heap[0][0] - 10.0**-_RTT_DIGITS if search.heap else float("inf")
        return origin, settled, offset, max(radius, 0.0)

    def _stub(self, a: str) -> tuple[str, int, float] | None:
        """The only link of a device that has exactly one (its neighbour, index, rtt)."""
        edges = self._adj[a]
        return edges[0] if len(edges) == 1 else None

    def nearest(self, a: str, targets: Collection[str]) -> str | None:
        """The target with the least route rtt from `a` (`a` itself, at 0, if it is one),
        ties by id; None when no target is reachable. The search stops once the nearest
        target and every one that may tie with it are settled, so it costs a
        neighbourhood, not the fleet (full route tables from every source are what ran a
        baseline out of memory at 5,000 devices)."""
        if a in targets:
            return a
        stub = self._stub(a)
        origin = stub[0] if stub is not None else a  # a's routes all cross its only link
        search = self._from.get(origin)
        if search is None:
            search = self._from[origin] = _Search(origin)
        # Settled nodes come out in key order; watch them as they are settled.
        first: float | None = None
        seen = [d for d in search.settled if d in targets and d != a]
        if seen:
            first = min(search.best[d][0] for d in seen)
        while search.heap and (first is None or search.heap[0][0] <= first):
            before = len(search.settled)
            key = search.heap[0]
            self._settle_next(search)
            if len(search.settled) > before:
                node = key[2][-1]
                if node in targets and node != a and first is None:
                    first = key[0]
                if node in targets and node != a:
                    seen.append(node)
        if first is None:
            return None
        best: tuple[float, str] | None = None
        for d in set(seen):
            if search.best[d][0] > first:
                continue
            r = self.route(a, d)
            if r is not None and (best is None or (r.rtt_ms, d) < best):
                best = (r.rtt_ms, d)
        return best[1] if best is not None else None

    def hold(self, routes: Mapping[tuple[str, str], Route]) -> None:
        """Take these routes (this table's own, from `fan_out` or `fan_in`) as found."""
        self._routes.update(routes)

    def forget(self) -> None:
        """Drop every search and route found so far (a table of its own, no parent)."""
        assert self._parent is None and self._renumber is None
        self._from, self._routes = {}, {}

    def reachable(self, a: str) -> dict[str, Route]:
        """Every route from `a` (`fan_out`), kept in the table."""
        out = self.fan_out(a)
        self.hold({(a, d): r for d, r in out.items()})
        return out

    def _build(self, s: _Search, a: str, node: str) -> Route:
        # Built only when asked: most settled nodes are never a query's target.
        return self._make(a, node, s.best[node][2], s.via[node])

    def _make(self, a: str, b: str, path: tuple[str, ...], links: tuple[int, ...]) -> Route:
        r = self._routes[(a, b)] = self._figured(path, links)
        return r

    def _figured(self, path: tuple[str, ...], links: tuple[int, ...]) -> Route:
        # The links' figures as lists, read with map: the same sums in the same order, at
        # C speed (a 10,000-device solve makes over a hundred thousand routes, and
        # Neurosurgeon two per device per app).
        cols = self._columns
        if cols is None:
            lks = self._links
            cols = self._columns = (
                list(map(_RTT, lks)),
                list(map(_MBPS, lks)),
                list(map(_JPM, lks)),
            )
        return Route(
            path,
            links,
            min(map(cols[1].__getitem__, links)),
            sum(map(cols[0].__getitem__, links)),
            sum(map(cols[2].__getitem__, links)),
        )

    # -- every route from one device, or to one, kept by nobody ------------------------------
    def fan_out(self, a: str) -> dict[str, Route]:
        """`route(a, d)` for every device d it reaches, from one search that is not kept:
        Neurosurgeon reads every device from every source, and kept, those searches ran
        5,000 devices out of memory."""
        out: dict[str, Route] = {}
        origin = a
        head: tuple[str, ...] = ()
        first: tuple[int, ...] = ()
        stub = self._stub(a)
        if stub is not None:  # as `route` does: the neighbour's routes, the link added
            out[stub[0]] = self._figured((a, stub[0]), (stub[1],))
            if self._stub(stub[0]) is not None:
                return out
            origin, head, first = stub[0], (a,), (stub[1],)
        s = _Search(origin)
        while s.heap:
            self._settle_next(s)
        for node in s.settled:
            if node != origin and node != a:
                out[node] = self._figured((*head, *s.best[node][2]), (*first, *s.via[node]))
        return out

    def fan_in(self, b: str) -> dict[str, Route]:
        """`route(d, b)` for every device d that reaches b, from one search backwards from
        b that is not kept (`solver.towards`)."""
        out: dict[str, Route] = {}
        stub = self._stub(b)
        if stub is None:
            for d, (path, links) in towards(self._adj, b, _RTT_DIGITS).items():
                if d != b:
                    out[d] = self._figured(path, links)
        else:  # as `route` does: the routes to b's neighbour, b's link added
            nb, k, _ = stub
            out[nb] = self._figured((nb, b), (k,))
            if self._stub(nb) is not None:
                return out
            for d, (path, links) in towards(self._adj, nb, _RTT_DIGITS).items():
                if d != nb:
                    out[d] = self._figured((*path, b), (*links, k))
        # A device with one link: its neighbour's route, the link added (as `route` does).
        # Such devices are found next to those reached (a shrunk table's adjacency lists
        # only the devices asked for so far).
        for x in [b, *out]:
            if self._stub(x) is not None and x != b:
                continue
            for d, k, _ in self._adj[x]:
                if d == b or d in out or self._stub(d) is None:
                    continue
                if x == b:
                    out[d] = self._figured((d, b), (k,))
                else:
                    r = out[x]
                    out[d] = self._figured((d, *r.path), (k, *r.links))
        return out

    def _settle_next(self, s: _Search) -> None:
        key = heappop(s.heap)
        path = key[2]
        node = path[-1]
        best = s.best
        settled = s.settled
        # Keys are only ever replaced by strictly smaller ones, so identity tells stale.
        if node in settled or best[node] is not key:
            return
        settled.add(node)
        rtt0 = s.exact_rtt[node]
        via0 = s.via[node]
        hops = key[1] + 1
        for nxt, k, link_rtt in self._adj[node]:
            if nxt in settled:
                continue
            rtt = rtt0 + link_rtt
            rounded = round(rtt, _RTT_DIGITS)
            cur = best.get(nxt)
            # Most relaxations lose on rtt or hops alone: decide those before building the
            # candidate's path, which only a tie on both needs.
            if cur is not None and (rounded, hops) >= cur[:2]:
                if rounded != cur[0] or hops != cur[1]:
                    continue
                cand = (rounded, hops, (*path, nxt))
                if not cand < cur:
                    continue
            else:
                cand = (rounded, hops, (*path, nxt))
            best[nxt] = cand
            s.exact_rtt[nxt] = rtt
            s.via[nxt] = (*via0, k)
            heappush(s.heap, cand)
