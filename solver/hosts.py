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
    clouds behind it), the clouds up to two hops from those and, for an app kept off the
    clouds, the edges behind all of them: the `cap` nearest by route rtt from the source,
    and the `cap // 2` cheapest per GFLOP of the rest."""
    allowed = set(app.allowed_tiers)
    everyone = fleet.hosts_of(app.allowed_tiers)
    if len(everyone) <= cap * 4:
        return list(everyone)
    src = fleet.index[app.source]
    sink = fleet.index[app.sink_id]
    near: set[int] = {src, sink}
    for s in (src, sink):
        for nb in adj[s]:
            near.add(nb)
            for x in adj[nb]:
                # Fellow devices of the same edge, and the clouds behind it.
                near.add(x)
                if fleet.tiers[x] == "cloud":
                    # Clouds up to two backbone hops on: a greener one is often worth a
                    # longer route (one hop left 0.5% of the objective on 10,000 devices).
                    ring = {y for y in adj[x] if fleet.tiers[y] == "cloud"}
                    ring |= {z for y in ring for z in adj[y] if fleet.tiers[z] == "cloud"}
                    near |= ring
                    if "cloud" not in allowed:
                        # Kept off the clouds, the edges behind them are the only
                        # alternative to the home edge.
                        near.update(
                            y for c in ring | {x} for y in adj[c] if fleet.tiers[y] == "edge"
                        )
    routes = problem.cost.routes

    def rtt(h: int) -> float:
        if h == src:
            return 0.0
        r = routes.route(app.source, fleet.ids[h])
        return INF if r is None else r.rtt_ms

    keyed = sorted((rtt(h), h) for h in near if fleet.tiers[h] in allowed)
    keyed = [(r, h) for r, h in keyed if r < INF]
    chosen = {h for _, h in keyed[:cap]}
    # Also the cheapest per GFLOP among the rest, whatever their distance.
    rest = sorted((float(fleet.cc[h]), h) for _, h in keyed[cap:])
    chosen.update(h for _, h in rest[: cap // 2])
    return sorted(chosen)


__all__ = ["adjacency", "pick_hosts"]
