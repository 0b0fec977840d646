"""The console's long lists: a filter, a page, the counts of every status, and the
topology per tier and zone (drawn by api/console/svg.py)."""

from __future__ import annotations

from typing import Any

from api.console import svg
from orchestrator.console_listing import Listing, counts, page_of, summarise


def test_a_page_of_rows_and_where_it_is() -> None:
    rows = list(range(250))
    shown, where = page_of(rows, Listing(page=2))
    assert shown == list(range(100, 200))
    assert where == {"page": 2, "pages": 3, "total": 250, "per_page": 100, "first": 101,
                     "last": 200}  # fmt: skip
    # Past the end: the last page, not an empty one.
    shown, where = page_of(rows, Listing(page=9))
    assert shown == list(range(200, 250)) and where["page"] == 3
    shown, where = page_of([], Listing())
    assert shown == [] and where["pages"] == 1 and where["first"] == where["last"] == 0


def test_a_filter_by_name_tier_and_status() -> None:
    assert Listing(q="CAM").matches("g001-cam-1", "device", ("alive",))
    assert not Listing(q="edge").matches("g001-cam-1", "device", ("alive",))
    assert not Listing(tier="edge").matches("g001-cam-1", "device", ())
    assert Listing(status="short").matches("x", "device", ("alive", "active", "short"))
    assert not Listing(status="down").matches("x", "device", ("alive", "active"))


def test_counts_per_group_and_in_all() -> None:
    marked = [("device", ("alive", "active")), ("device", ("down", "cordoned")),
              ("edge", ("alive", "active"))]  # fmt: skip
    got = counts(marked, ("device", "edge", "cloud"))
    assert got["groups"] == {"device": {"total": 2, "alive": 1, "active": 1, "down": 1,
                                        "cordoned": 1},
                             "edge": {"total": 1, "alive": 1, "active": 1}}  # fmt: skip
    assert got["all"]["total"] == 3 and got["all"]["alive"] == 2


def test_the_topology_per_tier_and_zone() -> None:
    edge: dict[str, Any] = {"tier": "edge", "alive": True, "state": "active"}
    nodes: list[dict[str, Any]] = [
        {"id": f"cam-{k}", "tier": "device", "zone": None, "alive": k != 0,
         "state": "cordoned" if k == 1 else "active"}
        for k in range(200)
    ]  # fmt: skip
    nodes += [{"id": "edge-a", "zone": "north", **edge}, {"id": "edge-b", "zone": "south", **edge}]
    links: list[dict[str, Any]] = [{"a": f"cam-{k}", "b": "edge-a" if k % 2 else "edge-b",
              "utilization": k / 200} for k in range(200)]  # fmt: skip
    links += [{"a": "cam-0", "b": "cam-1", "utilization": None},
              {"a": "cam-0", "b": "nowhere", "utilization": 1.0}]  # fmt: skip
    got = summarise(nodes, links)
    groups = {g["name"]: g for g in got["groups"]}
    assert groups["device"]["devices"] == 200 and groups["device"]["alive"] == 199
    assert groups["device"]["cordoned"] == 1 and groups["device"]["inside"] == 1
    assert set(groups) == {"device", "edge · north", "edge · south"}
    bundles = {(b["a"], b["b"]): b for b in got["bundles"]}
    assert bundles[("device", "edge · north")]["links"] == 100
    assert bundles[("device", "edge · north")]["utilization"] == 199 / 200
    drawn = svg.topology_groups(got["groups"], got["bundles"])
    assert drawn.count("<rect") == 3 and "200 devices, 199 alive" in drawn
    assert "1 cordoned · 1 links inside" in drawn and "100 links" in drawn
