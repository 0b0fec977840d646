"""How both backends key, remember and figure a measured link.

A link is undirected (the scenario has one figure per pair, smaller id first), but each
end measures it on its own: an agent times uploads to its peers, so both ends of a link
they send over report it, each their own direction. Both ends are kept apart, and the
link's figure is their bottleneck: the lower bandwidth and the higher RTT, what a
transfer over the link can count on. Storing only the last report made the figure flip
between the two ends' (different) figures on every heartbeat, and the reconcile loop saw
each flip as the link changing.

Memory. Each end's figure is an estimate that is remembered, with the time of its last
evidence, for `MEMORY_S` (a week): it does not expire when the end stops reporting, and
it never snaps back to the declared figure. A link the plan moved away from because it
degraded therefore stays degraded until a new measurement says otherwise (the agents
probe their unused links at a low rate, agents/probes.py). Only evidence moves an
estimate: a report of `m` on an estimate `e` last moved `age` seconds earlier gives

    e' = e + w (m - e),   w = 1 - (1 - MIN_WEIGHT) * exp(-age / TAU_S)

so back-to-back reports (one per heartbeat) move it at least halfway each (a link that
degrades reads 94% of the way down after four heartbeats), and a measurement after a long
silence (an unused link probed a minute later) all but replaces it: old evidence counts
less the older it is. The first report of an end is taken as it is.

A report is `fresh` for the TTL it was stored with (the heartbeat's lifetime); the link
is fresh while either end's newest report is. `at` is the newest report's time, so the
age counts from the last report, not the measurement: an agent repeats its latest figure
of a peer in every heartbeat for up to 10 s after measuring it (agents/main.py), and each
repeat counts as evidence (moving the estimate further towards that figure).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

LinkKey = tuple[str, str]

MIN_WEIGHT = 0.5
TAU_S = 30.0
MEMORY_S = 7 * 24 * 3600.0


def link_key(a: str, b: str) -> LinkKey:
    if a == b:
        raise ValueError(f"a link joins two different devices (got {a!r} twice)")
    return (a, b) if a < b else (b, a)


def weight(age_s: float) -> float:
    """How far a new measurement moves an estimate last moved age_s ago (0.5 .. 1)."""
    return 1.0 - (1.0 - MIN_WEIGHT) * math.exp(-max(age_s, 0.0) / TAU_S)


def remember(
    old: dict[str, Any] | None, mbps: float, rtt_ms: float, at: float, fresh_s: float
) -> dict[str, Any]:
    """One end's estimate after a new report (see the module docstring)."""
    value: dict[str, Any] = {
        "last_mbps": float(mbps), "last_rtt_ms": float(rtt_ms), "at": at, "fresh_s": fresh_s,
    }  # fmt: skip
    if old is None or "mbps" not in old:
        return value | {"mbps": float(mbps), "rtt_ms": float(rtt_ms)}
    w = weight(at - float(old["at"]))
    return value | {
        "mbps": float(old["mbps"]) + w * (float(mbps) - float(old["mbps"])),
        "rtt_ms": float(old["rtt_ms"]) + w * (float(rtt_ms) - float(old["rtt_ms"])),
    }


def bottleneck(reports: Iterable[dict[str, Any]], now: float) -> dict[str, Any]:
    """The figure of a link from its ends' remembered estimates: the lower bandwidth, the
    higher RTT (and so for the last raw measurements), with the newest report's time, its
    age and whether it is fresh."""
    ends = list(reports)
    if not ends:
        raise ValueError("a link's figure needs at least one report")
    at = max(float(r["at"]) for r in ends)
    return {
        "mbps": min(float(r["mbps"]) for r in ends),
        "rtt_ms": max(float(r["rtt_ms"]) for r in ends),
        "last_mbps": min(float(r.get("last_mbps", r["mbps"])) for r in ends),
        "last_rtt_ms": max(float(r.get("last_rtt_ms", r["rtt_ms"])) for r in ends),
        "at": at,
        "age_s": round(max(now - at, 0.0), 3),
        "fresh": any(now - float(r["at"]) <= float(r.get("fresh_s", 0.0)) for r in ends),
    }


def planned(
    declared: dict[str, Any] | None, measured: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The figures the solver uses for a link, and where they come from: a declared link
    takes its remembered measurement when there is one, the bandwidth capped at the
    declared capacity (a probe over loopback or a faster LAN finds more); a link nobody
    declared is planned over only while its measurement is fresh (a remembered figure of
    a link an operator deleted must not bring it back)."""
    if declared is not None:
        if measured is None:
            return {"mbps": float(declared["mbps"]), "rtt_ms": float(declared["rtt_ms"]),
                    "source": "declared"}  # fmt: skip
        return {
            "mbps": min(float(measured["mbps"]), float(declared["mbps"])),
            "rtt_ms": float(measured["rtt_ms"]),
            "source": "measured" if measured.get("fresh", True) else "remembered",
        }
    if measured is not None and measured.get("fresh", True):
        return {"mbps": float(measured["mbps"]), "rtt_ms": float(measured["rtt_ms"]),
                "source": "measured"}  # fmt: skip
    return None
