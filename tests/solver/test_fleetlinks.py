"""Floors from a device's own links (`solver.fleetlinks`) against the contract's routes."""

from __future__ import annotations

import numpy as np

from solver.fastcost import candidate_routes
from solver.fleetlinks import LinkBounds, Links, completed, figures
from solver.generate import generate
from solver.heuristic import adjacency, fleet_of
from solver.hosts import pick_hosts
from solver.problem import Problem
from solver.scenario import parse_scenario


def test_a_transfer_the_heuristic_did_not_route_gets_floors_from_both_ends() -> None:
    """Downward transfers (an edge back to a camera, a camera to a camera) are not routed
    for the heuristic's candidates; the bound allows them at figures from the links at
    both ends: never above the contract's route, and above the sender's links alone."""
    problem = Problem(parse_scenario(generate(3, devices=200, apps=40, blocks=4)))
    fleet = fleet_of(problem)
    adj = adjacency(problem, fleet)
    lb, links = LinkBounds.of(fleet), Links.of(fleet)
    filled = raised = 0
    for app in problem.scenario.apps:
        hosts = pick_hosts(problem, fleet, adj, app, 8)
        routes = candidate_routes(fleet, app, hosts, upward_only=True)
        got = completed(fleet, lb, links, routes)
        exact = candidate_routes(fleet, app, hosts, upward_only=False)
        fill = got.ok & ~routes.ok & exact.ok
        for name in ("c1", "c0", "w1", "w0"):
            floor, route = getattr(got, name)[fill], getattr(exact, name)[fill]
            assert (floor <= route * (1 + 1e-9) + 1e-12).all(), (app.id, name)
        h = np.array(hosts, dtype=np.int64)
        alone = figures(fleet, fleet.send[h], lb.rtt[h], lb.jpm[h], lb.mbps[h])[3]  # w0
        filled += int(fill.sum())
        raised += int((got.w0[fill] > np.broadcast_to(alone[:, None], fill.shape)[fill]).sum())
    assert filled > 100 and raised > filled // 4, (filled, raised)
