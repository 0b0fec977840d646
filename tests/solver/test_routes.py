"""The lazy, resumable route search against the contract reference's exhaustive search."""

from __future__ import annotations

import pytest

from solver.generate import generate
from solver.routes import RouteTable
from solver.scenario import parse_scenario
from tests.solver.contract_reference import load, route


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_routes_match_the_reference_in_any_query_order(seed: int) -> None:
    raw = generate(seed, devices=14, apps=2, blocks=3)
    scn = parse_scenario(raw)
    ref = load(raw)
    ids = [d.id for d in scn.devices]
    table = RouteTable(scn)
    # Far targets first, then near ones: the paused search must give the same answers.
    for a in ids:
        for b in reversed(ids):
            r = table.route(a, b)
            expected = route(ref, a, b) if a != b else None
            if expected is None or a == b:
                assert r is None
            else:
                assert r is not None and list(r.path) == expected


def test_reachable_lists_every_device_of_the_component() -> None:
    scn = parse_scenario(generate(3, devices=12, apps=1, blocks=3))
    table = RouteTable(scn)
    first = table.route("dev-0", "edge-0")
    full = table.reachable("dev-0")
    assert set(full) == {d.id for d in scn.devices} - {"dev-0"}
    if first is not None:
        assert full["edge-0"] == first
    for b, r in full.items():
        assert r.path[0] == "dev-0" and r.path[-1] == b
        assert r.rtt_ms == pytest.approx(sum(scn.links[k].rtt_ms for k in r.links))


@pytest.mark.parametrize("seed", [0, 1])
def test_a_refigured_table_gives_the_routes_of_a_fresh_one(seed: int) -> None:
    raw = generate(seed, devices=14, apps=2, blocks=3)
    scn = parse_scenario(raw)
    ids = [d.id for d in scn.devices]
    table = RouteTable(scn)
    for a in ids[::2]:
        for b in ids:
            table.route(a, b)  # a half-warm cache, as after a solve
    # More generations than a table looks up through its parents, so the copy is used too.
    for step in range(RouteTable._MAX_DEPTH + 3):
        k = (seed + 3 * step) % len(scn.links)
        links = list(scn.links)
        links[k] = links[k].model_copy(
            update={"mbps": links[k].mbps * 0.5, "j_per_mb": links[k].j_per_mb + 0.01}
        )
        scn = scn.model_copy(update={"links": tuple(links)})
        table = table.refigured(scn, frozenset({k}))
        fresh = RouteTable(scn)
        for a in ids:
            for b in ids:
                assert table.route(a, b) == fresh.route(a, b), (step, a, b)


def test_routes_of_single_link_devices_go_through_their_neighbour() -> None:
    """Cameras with one link take their routes from their neighbour's search: the same
    routes as the reference's, from, to and between such devices."""
    raw = generate(4, devices=60, apps=2, blocks=3)
    scn = parse_scenario(raw)
    degree: dict[str, int] = {}
    for lk in scn.links:
        degree[lk.a] = degree.get(lk.a, 0) + 1
        degree[lk.b] = degree.get(lk.b, 0) + 1
    stubs = [d.id for d in scn.devices if degree.get(d.id) == 1]
    others = [d.id for d in scn.devices if degree.get(d.id, 0) > 1]
    assert len(stubs) >= 10 and others
    table = RouteTable(scn)
    pairs = [(a, b) for a in stubs[:10] for b in (*stubs[:10], *others[::3])]
    pairs += [(b, a) for a, b in pairs]
    for a, b in pairs:
        r = table.route(a, b)
        expected = route(raw, a, b) if a != b else None
        if expected is None or a == b:
            assert r is None
        else:
            assert r is not None and list(r.path) == expected
            assert r.links == tuple(
                next(k for k, lk in enumerate(scn.links) if {lk.a, lk.b} == {x, y})
                for x, y in zip(r.path, r.path[1:], strict=False)
            )
            assert r.rtt_ms == sum(scn.links[k].rtt_ms for k in r.links)


@pytest.mark.parametrize("seed", [0, 2])
def test_a_shrunk_table_gives_the_routes_of_a_fresh_one(seed: int) -> None:
    """After a device is lost, the routes kept from before (renumbered) and those searched
    again are exactly those of a table built for the smaller fleet."""
    scn = parse_scenario(generate(seed, devices=30, apps=2, blocks=3))
    ids = [d.id for d in scn.devices]
    table = RouteTable(scn)
    for a in ids:
        for b in ids:
            table.route(a, b)  # every route cached, as after a solve
    lost = "edge-1"
    links = tuple(lk for lk in scn.links if lost not in (lk.a, lk.b))
    smaller = scn.model_copy(
        update={"devices": tuple(d for d in scn.devices if d.id != lost), "links": links}
    )
    now = {frozenset((lk.a, lk.b)): k for k, lk in enumerate(links)}
    renumber = {
        k: now[frozenset((lk.a, lk.b))]
        for k, lk in enumerate(scn.links)
        if frozenset((lk.a, lk.b)) in now
    }
    shrunk = table.shrunk(smaller, renumber)
    fresh = RouteTable(smaller)
    kept = 0
    for a in ids:
        for b in ids:
            if lost in (a, b):
                continue
            old = table.route(a, b)
            got, want = shrunk.route(a, b), fresh.route(a, b)
            assert got == want, (a, b)
            kept += old is not None and lost not in old.path
    assert kept > 0


def test_two_devices_linked_only_to_each_other_reach_nothing_else() -> None:
    raw = generate(1, devices=14, apps=1, blocks=3)
    raw["devices"] += [
        {**raw["devices"][0], "id": "lone-a"},
        {**raw["devices"][0], "id": "lone-b"},
    ]
    raw["links"].append({"a": "lone-a", "b": "lone-b", "mbps": 10, "rtt_ms": 2})
    scn = parse_scenario(raw)
    table = RouteTable(scn)
    pair = table.route("lone-a", "lone-b")
    assert pair is not None and pair.path == ("lone-a", "lone-b")
    for other in ("dev-0", "edge-0"):
        assert table.route("lone-a", other) is None
        assert table.route(other, "lone-b") is None
    assert table.nearest("lone-a", {"cloud-0"}) is None


def test_a_table_shrunk_again_and_again_gives_the_routes_of_a_fresh_one() -> None:
    """Six losses in a row, each table shrunk from the one before (past the depth where
    a shrunk table's adjacency copies its parent's lists): the routes are still those
    of a table built for what is left."""
    scn = parse_scenario(generate(3, devices=40, apps=2, blocks=3))
    table = RouteTable(scn)
    for lost in ("edge-1", "dev-3", "dev-5", "edge-2", "dev-8", "dev-11"):
        ids = [d.id for d in scn.devices]
        for a in ids:
            for b in ids:
                table.route(a, b)  # every route cached, as after a solve
        links = tuple(lk for lk in scn.links if lost not in (lk.a, lk.b))
        now = {frozenset((lk.a, lk.b)): k for k, lk in enumerate(links)}
        renumber = {
            k: now[frozenset((lk.a, lk.b))]
            for k, lk in enumerate(scn.links)
            if frozenset((lk.a, lk.b)) in now
        }
        scn = scn.model_copy(
            update={"devices": tuple(d for d in scn.devices if d.id != lost), "links": links}
        )
        table = table.shrunk(scn, renumber)
        fresh = RouteTable(scn)
        left = [d.id for d in scn.devices]
        for a in left:
            for b in left:
                assert table.route(a, b) == fresh.route(a, b), (lost, a, b)
