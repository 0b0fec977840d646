"""A device's speed calibrated from the compute times its agent measures.

Each agent reports, per partition or cascade stage it serves, `recent_ms`: the mean
compute time of its last 64 requests with the fastest and slowest quarter left out
(agents/metrics.py), and how many requests that covers. Knowing what the partition
computes per request (its blocks' GFLOP, and its exit heads', each weighed by the chance
that the request gets that far: `partition_work`), every partition gives a measured time
per GFLOP on that device. The device's figure is the request-weighted median over its
partitions (a partition that misbehaves moves it little), blended with the prior (the
enrollment benchmark, or what the operator set) as if the prior had been seen on
`PRIOR_REQUESTS` requests at first, fewer as evidence grows and none once it holds
`ENOUGH_REQUESTS` (`prior_weight`), the evidence weighing as every request the partition
served. Since `recent_ms` covers the last requests
only, the figure follows a device that slows down or speeds up.

A measurement that gives a speed outside [MIN_GFLOPS, MAX_GFLOPS] is dropped and counted;
a device whose compute is emulated keeps its emulated speed (emulation is the figure).
Its `overhead_ms` is measured the same way: each partition's recent time beyond its
compute and the hops after it, from the request's first byte to its answer's last
(receiving, decoding, framing, answering; agents/ingress.py), request-weighted median,
blended with 0 (`calibrated_overhead`).
Then each model's cost factor (`model_factors`): its measured time per GFLOP against
the calibrated speed of the devices that ran it, which scales its blocks' GFLOP in the
scenario; an int8 variant's from its speed against its source as its devices measure it
(`variant_factors`). The scenario carries the calibrated figures, so `GET /v1/scenario`
replays exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PRIOR_REQUESTS = 20.0
# Evidence of this many requests (an agent's whole window of recent times) is enough: the
# prior's weight falls from PRIOR_REQUESTS to none as evidence grows to it. Weighed as a
# fixed PRIOR_REQUESTS, it pulled a model measured at 3x its FLOPs' cost back to 2.7x
# after 100 requests, an error of 11% that no amount of traffic at that rate removed.
ENOUGH_REQUESTS = 64
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
    w = prior_weight(total)
    blended = (w / prior + total * median) / (w + total)
    return float(f"{1.0 / blended:.{SIGNIFICANT}g}"), dropped


def prior_weight(evidence: int) -> float:
    """How many requests' worth the prior weighs against `evidence` requests: PRIOR_REQUESTS
    with none, falling linearly to 0 at ENOUGH_REQUESTS."""
    return PRIOR_REQUESTS * max(0.0, 1.0 - evidence / ENOUGH_REQUESTS)


def calibrated_overhead(metrics: dict[str, Any]) -> float:
    """A device's `overhead_ms`: the request-weighted median of its partitions' measured
    overhead (time beyond compute and later hops: receiving, decoding, framing,
    answering), blended with 0 as a prior (`prior_weight`)."""
    values = [
        (float(m["overhead_ms"]), _evidence(m, "overhead_count"))
        for m in metrics.values()
        if m.get("overhead_ms") is not None and int(m.get("overhead_count") or 0) > 0
    ]
    if not values:
        return 0.0
    median, total = _weighted_median(values)
    return float(f"{total * median / (prior_weight(total) + total):.{SIGNIFICANT}g}")


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
    per device cannot say so. The factor, blended with 1 as a prior (`prior_weight`),
    scales the model's block and exit-head GFLOP in the scenario (the registry's FLOPs
    are kept as they are)."""
    factors = {}
    for model_id, (median, total) in _measured_factors(evidence).items():
        w = prior_weight(total)
        factor = (w + total * median) / (w + total)
        factors[model_id] = float(f"{factor:.{SIGNIFICANT}g}")
    return factors


def _measured_factors(evidence: list[tuple[Timing, float]]) -> dict[str, tuple[float, int]]:
    """Each model's measured cost factor (request-weighted median), and its requests."""
    ratios: dict[str, list[tuple[float, int]]] = {}
    for t, speed in evidence:
        ratio = t.ms / 1000.0 / t.gflop * speed
        if math.isfinite(ratio) and ratio > 0:
            ratios.setdefault(t.model, []).append((ratio, t.requests))
    return {model_id: _weighted_median(values) for model_id, values in ratios.items()}


@dataclass(frozen=True)
class VariantRatio:
    """An int8 variant's time against its source's (above 1: slower): as measured when it
    was made, on the control plane's host (`quantized`); as the devices that served it
    measured it (`devices`, over `requests`; None before any); and the ratio the
    scenario costs it by (`planned`): the first blended with the second, as for a speed."""

    source: str
    quantized: float
    devices: float | None
    requests: int
    planned: float


def variant_factors(
    variants: dict[str, tuple[str, float]],
    evidence: list[tuple[Timing, float]],
    factors: dict[str, float],
) -> tuple[dict[str, float], dict[str, VariantRatio]]:
    """The cost factors with each int8 variant's (`variants`: variant -> (source, ratio
    measured when it was made)) set from its ratio confirmed on the devices, and those
    ratios.

    A variant's layers are its source's times the quantize-time ratio (profiled.py). The
    ratio holds for the control plane's host, not for the device: int8 kernels that win
    on one CPU lose on another. What the device says: the variant's measured time
    against what its source costs there, its source's calibrated factor included (the
    source's factor times nothing else: without it, a variant that never ran would
    stay costed at its source's bare FLOPs while its source is costed as it runs, and
    the choice between them would compare a measurement with a guess). So the variant's
    factor is its source's times planned / quantized: its source's before it runs, its
    own measurement once it has run on enough requests."""
    out = dict(factors)
    measured = _measured_factors(evidence)
    ratios = {}
    for variant, (source, quantized) in variants.items():
        own = measured.get(variant)
        source_factor = factors.get(source, 1.0)
        devices, requests, planned = None, 0, quantized
        if own is not None:
            median, requests = own
            devices = float(f"{quantized * median / source_factor:.{SIGNIFICANT}g}")
            w = prior_weight(requests)
            planned = float(
                f"{(w * quantized + requests * devices) / (w + requests):.{SIGNIFICANT}g}"
            )
        out[variant] = float(f"{source_factor * planned / quantized:.{SIGNIFICANT}g}")
        ratios[variant] = VariantRatio(source, quantized, devices, requests, planned)
    return out, ratios


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
