"""How both backends key and figure a measured link.

A link is undirected (the scenario has one figure per pair, smaller id first), but each
end measures it on its own: an agent times uploads to its peers, so both ends of a link
they send over report it, each their own direction. Both reports are kept apart, each
until its TTL, and the link's figure is their bottleneck: the lower bandwidth and the
higher RTT, what a transfer over the link can count on. Storing only the last report
made the figure flip between the two ends' (different) figures on every heartbeat, and
the reconcile loop saw each flip as the link changing.
"""

from __future__ import annotations

from collections.abc import Iterable

LinkKey = tuple[str, str]


def link_key(a: str, b: str) -> LinkKey:
    if a == b:
        raise ValueError(f"a link joins two different devices (got {a!r} twice)")
    return (a, b) if a < b else (b, a)


def bottleneck(reports: Iterable[dict[str, float]]) -> dict[str, float]:
    """The figure of a link from its ends' fresh reports ({"mbps", "rtt_ms", "at"} each):
    the lower bandwidth, the higher RTT, as of the newest report."""
    fresh = list(reports)
    if not fresh:
        raise ValueError("a link's figure needs at least one report")
    return {
        "mbps": min(float(r["mbps"]) for r in fresh),
        "rtt_ms": max(float(r["rtt_ms"]) for r in fresh),
        "at": max(float(r["at"]) for r in fresh),
    }
