"""The best route to one device from every other, found from that device's end.

`solver.routes` searches from a route's first device, as the contract reads a route:
least total `rtt_ms`, then fewer links, then the least sequence of device ids read from
the first device. Neurosurgeon needs the route from every device to one sink, and a
search from each of thousands of devices (kept, as the route table keeps them) ran 5,000
devices out of memory. One search backwards from the sink gives every device's least
(rtt, hops); the order of sequences is then decided hop by hop: a sequence read from d
is least when its second id is the least of d's neighbours on a best path, and its rest
is that neighbour's own least sequence (every part of a best path is best, and sequences
that differ in their second id are ordered by it alone). The rtt sums are rounded as the
route table rounds them, so that sums of the same links in another order tie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from heapq import heappop, heappush

Paths = dict[str, tuple[tuple[str, ...], tuple[int, ...]]]


def towards(adj: Mapping[str, Sequence[tuple[str, int, float]]], t: str, digits: int) -> Paths:
    """(path, links) of the best route to `t` from every device that reaches it and has
    two links or more (a device with one link is the route table's to add: no route
    passes through it), and `t` itself with the path `(t,)`. `adj`: device -> (neighbour,
    link index, link rtt), sorted by neighbour id, then link."""
    exact: dict[str, float] = {t: 0.0}
    key: dict[str, tuple[float, int]] = {t: (0.0, 0)}
    heap: list[tuple[float, int, str]] = [(0.0, 0, t)]
    order: list[str] = []
    done: set[str] = set()
    while heap:
        r, h, node = heappop(heap)
        if node in done or key[node] != (r, h):
            continue
        done.add(node)
        if len(adj[node]) == 1 and node != t:
            continue
        order.append(node)
        for nxt, _, link_rtt in adj[node]:
            if nxt in done:
                continue
            total = exact[node] + link_rtt
            cand = (round(total, digits), h + 1)
            if nxt not in key or cand < key[nxt]:
                key[nxt], exact[nxt] = cand, total
                heappush(heap, (*cand, nxt))
    out: Paths = {t: ((t,), ())}
    for node in order[1:]:  # in the order of their keys: a next hop comes before
        rtt, hops = key[node]
        for x, k, link_rtt in adj[node]:  # the least id first, then the first link
            if x in out and key[x][1] + 1 == hops and round(exact[x] + link_rtt, digits) == rtt:
                path, links = out[x]
                out[node] = ((node, *path), (k, *links))
                break
    return out


__all__ = ["towards"]
