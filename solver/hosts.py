"""Candidate hosts per app for the heuristic: every allowed host on small fleets, a
neighbourhood of the source and sink on large ones (the large-fleet bound,
`solver.fleetbound`, accounts for every host outside it)."""

from __future__ import annotations

from solver.fastcost import INF, Fleet
from solver.problem import Problem
from solver.scenario import App


def adjacency(problem: Problem, fleet: Fleet) -> list[list[int]]:
    adj = problem.derived.get("adjacency")
    if not isinstance(adj, list):
        adj = [[] for _ in range(fleet.n)]
        for link in problem.scenario.links:
            a, b = fleet.index[link.a], fleet.index[link.b]
            adj[a].append(b)
            adj[b].append(a)
        problem.derived["adjacency"] = adj
    return adj


def pick_hosts(
    problem: Problem, fleet: Fleet, adj: list[list[int]], app: App, cap: int
) -> list[int]:
    """Candidate hosts: every allowed host on small fleets; else, around the source and
    the sink, their neighbours and their neighbours' (fellow devices of an edge, the
    clouds behind it), the clouds next to those and, for an app kept off the clouds, the
    edges behind them: the `cap` nearest by route rtt from the source; and the `cap // 2`
    cheapest per GFLOP of the rest and of the clouds a hop further on (for an app kept off
    the clouds, of the edges behind every one of those clouds)."""
    allowed = set(app.allowed_tiers)
    everyone = fleet.hosts_of(app.allowed_tiers)
    if len(everyone) <= cap * 4:
        return list(everyone)
    src = fleet.index[app.source]
    sink = fleet.index[app.sink_id]
    tiers = fleet.tiers
    near: set[int] = {src, sink}
    further: set[int] = set()
    for s in (src, sink):
        for nb in adj[s]:
            near.add(nb)
            for x in adj[nb]:
                # Fellow devices of the same edge, and the clouds behind it.
                near.add(x)
                if tiers[x] == "cloud":
                    # Clouds next to those, and next to them: a greener one is often worth
                    # a longer route (one hop only left plans 0.5% dearer on 10,000
                    # devices). The second hop competes on cost alone, so its routes are
                    # looked up only for the few it gives.
                    ring = {y for y in adj[x] if tiers[y] == "cloud"}
                    on = {z for y in ring for z in adj[y] if tiers[z] == "cloud"}
                    near |= ring
                    further |= on
                    if "cloud" not in allowed:
                        # Kept off the clouds, the edges behind them are the only
                        # alternative to the home edge.
                        near.update(y for y in adj[x] if tiers[y] == "edge")
                        further.update(y for c in ring | on for y in adj[c] if tiers[y] == "edge")
    routes = problem.cost.routes

    def rtt(h: int) -> float:
        if h == src:
            return 0.0
        r = routes.route(app.source, fleet.ids[h])
        return INF if r is None else r.rtt_ms

    keyed = sorted((rtt(h), h) for h in near if tiers[h] in allowed)
    keyed = [(r, h) for r, h in keyed if r < INF]
    chosen = {h for _, h in keyed[:cap]}
    # Also the cheapest per GFLOP among the rest, whatever their distance.
    rest = {h for _, h in keyed[cap:]}
    more = sorted(
        [(float(fleet.cc[h]), h) for h in rest]
        + [(float(fleet.cc[h]), h) for h in further - near if tiers[h] in allowed]
    )
    picked = 0
    for _, h in more:
        if picked == cap // 2:
            break
        if h in rest or rtt(h) < INF:
            chosen.add(h)
            picked += 1
    return sorted(chosen)


__all__ = ["adjacency", "pick_hosts"]
