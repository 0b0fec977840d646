"""The console's long lists at fleet scale: a filter and a page of the fleet, the
deployments and the links (counts of every status on top, as Nomad's and Kubernetes'
dashboards show them), and the topology summarised per tier and zone when it has more
devices than a drawing can show. At 1,000 devices a page that drew every row took seconds
to render and weighed most of a megabyte; a page of rows takes milliseconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

PER_PAGE = 100
MAX_PER_PAGE = 1000
# Beyond this many devices the topology is drawn per tier and zone ("show all" draws them).
TOPOLOGY_NODES = 120
TIERS = ("device", "edge", "cloud")
DEVICE_STATUSES = ("alive", "down", "active", "cordoned", "draining", "short")
DEPLOYMENT_STATUSES = ("placed", "degraded", "waiting", "infeasible", "pending")
T = TypeVar("T")


@dataclass(frozen=True)
class Listing:
    """What a page asks for: a filter (id or name containing `q`, a tier, a status), one
    page of `per_page` rows, and for the topology, every device drawn (`all`)."""

    page: int = 1
    per_page: int = PER_PAGE
    q: str = ""
    tier: str = ""
    status: str = ""
    all: bool = False

    def matches(self, name: str, tier: str | None, marks: Iterable[str]) -> bool:
        return (
            (not self.q or self.q.lower() in name.lower())
            and (not self.tier or tier == self.tier)
            and (not self.status or self.status in marks)
        )


def page_of(rows: Sequence[T], listing: Listing) -> tuple[list[T], dict[str, int]]:
    """The page's rows, and where they are: rows `first` to `last` of `total`, page
    `page` of `pages` (a page past the end shows the last one)."""
    total = len(rows)
    pages = max(1, -(-total // listing.per_page))
    page = min(listing.page, pages)
    start = (page - 1) * listing.per_page
    chosen = list(rows[start : start + listing.per_page])
    where = {"page": page, "pages": pages, "total": total, "per_page": listing.per_page,
             "first": start + 1 if chosen else 0, "last": start + len(chosen)}  # fmt: skip
    return chosen, where


def counts(marked: Iterable[tuple[str, Iterable[str]]], groups: Sequence[str]) -> dict[str, Any]:
    """How many rows of each group (tier) carry each mark (status), and in all."""
    by: dict[str, Counter[str]] = {g: Counter() for g in groups}
    for group, marks in marked:
        by.setdefault(group, Counter()).update(("total", *marks))
    every: Counter[str] = Counter()
    for c in by.values():
        every.update(c)
    return {"groups": {g: dict(c) for g, c in by.items() if c}, "all": dict(every)}


def group_of(node: Mapping[str, Any]) -> str:
    """The drawing's group of a device: its tier, and its zone when it has one."""
    zone = node.get("zone")
    return f"{node['tier']} · {zone}" if zone else str(node["tier"])


def summarise(
    nodes: Sequence[Mapping[str, Any]], links: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The topology per tier and zone: each group's devices (alive, cordoned, draining)
    and the links between groups (how many, the busiest one's plan utilization)."""
    where: dict[str, str] = {}
    groups: dict[str, dict[str, Any]] = {}
    for n in nodes:
        key = group_of(n)
        where[str(n["id"])] = key
        g = groups.setdefault(key, {"name": key, "tier": n["tier"], "devices": 0, "alive": 0,
                                    "cordoned": 0, "draining": 0, "inside": 0})  # fmt: skip
        g["devices"] += 1
        g["alive"] += 1 if n.get("alive") else 0
        if n.get("state") in ("cordoned", "draining"):
            g[str(n["state"])] += 1
    bundles: dict[tuple[str, str], dict[str, Any]] = {}
    for link in links:
        ga, gb = where.get(str(link["a"])), where.get(str(link["b"]))
        if ga is None or gb is None:
            continue
        if ga == gb:
            groups[ga]["inside"] += 1
            continue
        a, b = sorted((ga, gb))
        bundle = bundles.setdefault((a, b), {"a": a, "b": b, "links": 0, "utilization": 0.0})
        bundle["links"] += 1
        bundle["utilization"] = max(bundle["utilization"], float(link.get("utilization") or 0))
    return {"groups": list(groups.values()), "bundles": list(bundles.values())}
