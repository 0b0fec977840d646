"""A device's speed calibrated from the compute times its agent measures.

Each agent reports, per partition or cascade stage it serves, `recent_ms`: the mean
compute time of its last 64 requests with the fastest and slowest tenth left out
(agents/metrics.py), and how many requests that covers. Knowing what the partition
computes per request (its blocks' GFLOP, and its exit heads', each weighed by the chance
that the request gets that far: `partition_work`), every partition gives a measured time
per GFLOP on that device. The device's figure is the request-weighted median over its
partitions (a partition that misbehaves moves it little), blended with the prior (the
enrollment benchmark, or what the operator set) as if the prior had been seen on
`PRIOR_REQUESTS` requests. Since `recent_ms` covers the last requests only, the figure
follows a device that slows down or speeds up.

A measurement that gives a speed outside [MIN_GFLOPS, MAX_GFLOPS] is dropped and counted;
a device whose compute is emulated keeps its emulated speed (emulation is the figure).
The scenario carries the calibrated `gflops`, so `GET /v1/scenario` replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRIOR_REQUESTS = 20.0
MIN_GFLOPS, MAX_GFLOPS = 1e-3, 1e7
SIGNIFICANT = 4  # speeds are rounded: measurement noise below this must not churn plans


@dataclass(frozen=True)
class Timing:
    """One partition on one device: GFLOP per request, its measured ms, over n requests."""

    gflop: float
    ms: float
    requests: int


def partition_work(model: dict[str, Any], first: int, last: int) -> float:
    """Expected GFLOP per request entering blocks first..last of a scenario model entry:
    each block and exit head weighed by the chance the request reaches it."""
    exits = {e["after"]: e for e in model.get("exits", [])}
    reach, work = 1.0, 0.0
    for block in model["layers"][first : last + 1]:
        work += reach * float(block["gflops"])
        head = exits.get(block["name"])
        if head is not None:
            work += reach * float(head["gflops"])
            reach *= 1.0 - float(head["prob"])
    return work


def timings(
    metrics: dict[str, Any],
    models: dict[str, dict[str, Any]],
    stage_model: Callable[[str, int], str | None],
) -> list[Timing]:
    """The timings in one heartbeat's `metrics` (keyed like the desired state)."""
    out = []
    for key, m in metrics.items():
        ms, n = m.get("recent_ms"), int(m.get("recent_count") or 0)
        if ms is None or n <= 0:
            continue
        parts = key.split("/")
        work = None
        if len(parts) == 2 and parts[1].startswith("stage") and parts[1][5:].isdigit():
            model_id = stage_model(parts[0], int(parts[1][5:]))
            if model_id in models:
                layers = models[model_id]["layers"]
                work = sum(float(b["gflops"]) for b in layers)  # a stage runs it all
        elif len(parts) == 3 and parts[1] in models:
            first, _, last = parts[2].partition("-")
            if first.isdigit() and last.isdigit():
                work = partition_work(models[parts[1]], int(first), int(last))
        if work is not None and work > 0:
            out.append(Timing(work, float(ms), n))
    return out


def calibrated_gflops(prior: float, measured: list[Timing]) -> tuple[float, int]:
    """The device's GFLOP/s from the prior and its timings, and how many were dropped."""
    taus: list[tuple[float, int]] = []  # (seconds per GFLOP, requests)
    dropped = 0
    for t in measured:
        tau = t.ms / 1000.0 / t.gflop
        if not math.isfinite(tau) or tau <= 0 or not MIN_GFLOPS <= 1.0 / tau <= MAX_GFLOPS:
            dropped += 1
            continue
        taus.append((tau, t.requests))
    if not taus:
        return prior, dropped
    taus.sort()
    total = sum(n for _, n in taus)
    seen, median = 0, taus[-1][0]
    for tau, n in taus:
        seen += n
        if seen * 2 >= total:
            median = tau
            break
    blended = (PRIOR_REQUESTS / prior + total * median) / (PRIOR_REQUESTS + total)
    return float(f"{1.0 / blended:.{SIGNIFICANT}g}"), dropped
