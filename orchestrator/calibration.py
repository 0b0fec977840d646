"""A device's speed calibrated from the compute times its agent measures.

Each agent reports, per partition or cascade stage it serves, `recent_ms`: the mean
compute time of its last 64 requests with the fastest and slowest tenth left out
(agents/metrics.py), and how many requests that covers. Knowing what the partition
computes per request (its blocks' GFLOP, and its exit heads', each weighed by the chance
that the request gets that far: `partition_work`), every partition gives a measured time
per GFLOP on that device. The device's figure is the request-weighted median over its
partitions (a partition that misbehaves moves it little), blended with the prior (the
enrollment benchmark, or what the operator set) as if the prior had been seen on
`PRIOR_REQUESTS` requests, the evidence weighing as every request the partition served
(so the prior fades as traffic accumulates). Since `recent_ms` covers the last requests
only, the figure follows a device that slows down or speeds up.

A measurement that gives a speed outside [MIN_GFLOPS, MAX_GFLOPS] is dropped and counted;
a device whose compute is emulated keeps its emulated speed (emulation is the figure).
Its `overhead_ms` is measured the same way: each partition's recent time beyond its
compute and the hops after it (receiving, decoding, framing, answering; at the source,
the client's request too), request-weighted median, blended with 0 (`calibrated_overhead`).
Then each model's cost factor (`model_factors`): its measured time per GFLOP against
the calibrated speed of the devices that ran it, which scales its blocks' GFLOP in the
scenario. The scenario carries the calibrated figures, so `GET /v1/scenario` replays
exactly.
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
    model: str = ""


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
        ms, n = m.get("recent_ms"), _evidence(m, "recent_count")
        if ms is None or n <= 0:
            continue
        parts = key.split("/")
        work, model_id = None, None
        if len(parts) == 2 and parts[1].startswith("stage") and parts[1][5:].isdigit():
            model_id = stage_model(parts[0], int(parts[1][5:]))
            if model_id in models:
                layers = models[model_id]["layers"]
                work = sum(float(b["gflops"]) for b in layers)  # a stage runs it all
        elif len(parts) == 3 and parts[1] in models:
            model_id = parts[1]
            first, _, last = parts[2].partition("-")
            if first.isdigit() and last.isdigit():
                work = partition_work(models[parts[1]], int(first), int(last))
        if work is not None and work > 0 and model_id is not None:
            out.append(Timing(work, float(ms), n, model_id))
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
    median, total = _weighted_median(taus)
    blended = (PRIOR_REQUESTS / prior + total * median) / (PRIOR_REQUESTS + total)
    return float(f"{1.0 / blended:.{SIGNIFICANT}g}"), dropped


def calibrated_overhead(metrics: dict[str, Any]) -> float:
    """A device's `overhead_ms`: the request-weighted median of its partitions' measured
    overhead (time beyond compute and later hops: receiving, decoding, framing,
    answering), blended with 0 as if 0 had been seen on `PRIOR_REQUESTS` requests."""
    values = [
        (float(m["overhead_ms"]), _evidence(m, "overhead_count"))
        for m in metrics.values()
        if m.get("overhead_ms") is not None and int(m.get("overhead_count") or 0) > 0
    ]
    if not values:
        return 0.0
    median, total = _weighted_median(values)
    return float(f"{total * median / (PRIOR_REQUESTS + total):.{SIGNIFICANT}g}")


def _evidence(m: dict[str, Any], window: str) -> int:
    """How many requests a partition's recent figure stands for against the prior: every
    request it served since the agent started, not only the window the figure is taken
    over (`recent_count` stops at 64, so weighing by it left the prior a quarter of the
    weight for ever: a device at 12 GFLOP/s by its start-up benchmark and 20 by what it
    ran stayed planned at 17)."""
    return max(int(m.get("requests") or 0), int(m.get(window) or 0))


def _weighted_median(values: list[tuple[float, int]]) -> tuple[float, int]:
    """The request-weighted median of (value, requests), and the requests in all."""
    ordered = sorted(values)
    total = sum(n for _, n in ordered)
    seen = 0
    for value, n in ordered:
        seen += n
        if seen * 2 >= total:
            return value, total
    return ordered[-1][0], total


def model_factors(evidence: list[tuple[Timing, float]]) -> dict[str, float]:
    """Each model's cost factor: how much slower than its FLOPs say it runs, against the
    calibrated speed of the devices that ran it ((timing, device GFLOP/s) pairs).

    A device's speed is the median over its partitions, so it fits the typical model it
    runs; a memory-bound model (AlexNet's fully connected layers at batch 1) or one whose
    small layers leave the cores idle runs slower per FLOP than that, and a single speed
    per device cannot say so. The factor, blended with 1 as if 1 had been seen on
    `PRIOR_REQUESTS` requests, scales the model's block and exit-head GFLOP in the
    scenario (the registry's FLOPs are kept as they are)."""
    ratios: dict[str, list[tuple[float, int]]] = {}
    for t, speed in evidence:
        ratio = t.ms / 1000.0 / t.gflop * speed
        if math.isfinite(ratio) and ratio > 0:
            ratios.setdefault(t.model, []).append((ratio, t.requests))
    factors = {}
    for model_id, values in ratios.items():
        median, total = _weighted_median(values)
        factor = (PRIOR_REQUESTS + total * median) / (PRIOR_REQUESTS + total)
        factors[model_id] = float(f"{factor:.{SIGNIFICANT}g}")
    return factors


def scaled(model: dict[str, Any], factor: float) -> dict[str, Any]:
    """A scenario model entry with its blocks' and exit heads' GFLOP times `factor`."""
    if factor == 1.0:
        return model
    out = {
        **model,
        "layers": [{**b, "gflops": _sig(b["gflops"] * factor)} for b in model["layers"]],
    }
    if model.get("exits"):
        out["exits"] = [{**e, "gflops": _sig(e["gflops"] * factor)} for e in model["exits"]]
    return out


def _sig(value: float) -> float:
    return float(f"{value:.6g}")
