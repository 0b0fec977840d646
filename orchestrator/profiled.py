"""A model's blocks costed as they were measured to run, not in proportion to their FLOPs.

Two measurements a model row can carry in its `detail`, both taken by the registry with
onnxruntime on real inputs:

- `profile` (`POST /v1/models/{id}/profile`, the registry's `profile_blocks`): each
  block's median time. Block time is not proportional to FLOPs: AlexNet's fc6, a
  fully connected layer at batch 1, is memory-bound and takes several times what its
  FLOPs say. The block's cost in the scenario is the model's GFLOP shared out by the
  measured times, so the model's total is unchanged (a device's speed and the model's
  calibrated factor stay comparable) and a split is costed where the time really goes.
- `fp32_latency_ms` / `int8_latency_ms` (an int8 variant, measured against its source
  when it was made): the variant costs its source's cost times that ratio. Dynamic
  int8 can be several times slower than fp32 on a CPU without int8 kernels; counted as
  fp32's FLOPs it would be planned as equal.

The scenario carries the profiled figures, so `GET /v1/scenario` replays exactly; the
agents' measured times then refine the whole model's cost (`calibration.model_factors`).
"""

from __future__ import annotations

import math
from typing import Any

SIGNIFICANT = 6


def profiled_layers(blocks: list[dict[str, Any]], detail: dict[str, Any]) -> list[dict[str, Any]]:
    """Scenario layers of a model row: its blocks, each block's GFLOP replaced by its share
    of the model's GFLOP by measured time when a complete profile is stored."""
    layers = [dict(b) for b in blocks]
    times = block_times(detail, [b["name"] for b in blocks])
    total_ms = sum(times) if times else 0.0
    if not times or total_ms <= 0:
        return layers
    total_gflop = sum(float(b["gflops"]) for b in blocks)
    for layer, ms in zip(layers, times, strict=True):
        layer["gflops"] = _sig(total_gflop * ms / total_ms)
    return layers


def block_times(detail: dict[str, Any], names: list[str]) -> list[float] | None:
    """The stored profile's time per block in chain order, or None when there is none or
    it does not cover every block with a finite, non-negative time (a partial profile
    would make the unprofiled blocks free)."""
    profile = detail.get("profile")
    stored = profile.get("block_ms") if isinstance(profile, dict) else None
    if not isinstance(stored, dict):
        return None
    times = []
    for name in names:
        value = stored.get(name)
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            return None
        times.append(float(value))
    return times


def variant_ratio(detail: dict[str, Any]) -> float | None:
    """How much slower (above 1) or faster an int8 variant ran than its source, as
    measured when it was made; None when it was not measured."""
    fp32, int8 = detail.get("fp32_latency_ms"), detail.get("int8_latency_ms")
    if not isinstance(fp32, int | float) or not isinstance(int8, int | float):
        return None
    if not (math.isfinite(fp32) and math.isfinite(int8)) or fp32 <= 0 or int8 <= 0:
        return None
    return float(int8) / float(fp32)


def variant_layers(
    layers: list[dict[str, Any]], source_layers: list[dict[str, Any]], ratio: float
) -> list[dict[str, Any]]:
    """A variant's layers costed as its source's times the measured ratio. Block by block
    when both have the same blocks (quantization keeps the chain), else the variant's
    own layers scaled so that their total is the source's total times the ratio."""
    names = [b["name"] for b in layers]
    if names == [b["name"] for b in source_layers]:
        return [
            {**b, "gflops": _sig(float(s["gflops"]) * ratio)}
            for b, s in zip(layers, source_layers, strict=True)
        ]
    own = sum(float(b["gflops"]) for b in layers)
    if own <= 0:
        return layers
    scale = sum(float(s["gflops"]) for s in source_layers) * ratio / own
    return [{**b, "gflops": _sig(float(b["gflops"]) * scale)} for b in layers]


def _sig(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT}g}")
