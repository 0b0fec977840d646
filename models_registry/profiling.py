"""Per-block latency on this host, and how well FLOPs predict it.

Each block is extracted as its own partition and run by onnxruntime on the tensor the
previous blocks really produce (from one random input): ``warmup`` runs, then the median
of ``runs``. The solver's cost model assumes time = GFLOP / device GFLOP/s; `compare`
fits this host's GFLOP/s (total GFLOP / total measured seconds) and reports the Pearson
correlation between estimated and measured block times, and their ratios.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from models_registry.blocks import ModelAnalysis
from models_registry.errors import ModelError
from models_registry.partition import extract_partition
from models_registry.runtime import Feeds, make_session, random_inputs, run


def median_latency_ms(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
) -> float:
    """Median wall time of ``runs`` calls after ``warmup`` untimed calls, in ms."""
    if runs < 1 or warmup < 0:
        raise ModelError("runs must be at least 1 and warmup at least 0")
    names = [value.name for value in session.get_outputs()]
    needed = {value.name: feeds[value.name] for value in session.get_inputs()}
    for _ in range(warmup):
        session.run(names, needed)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(names, needed)
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples)


@dataclass(frozen=True)
class BlockTiming:
    name: str
    gflops: float
    median_ms: float


def profile_blocks(
    analysis: ModelAnalysis,
    *,
    runs: int = 10,
    warmup: int = 2,
    threads: int = 1,
    seed: int = 0,
    on_block: Callable[[str], None] | None = None,
) -> list[BlockTiming]:
    """Median latency of every block, in chain order."""
    env: Feeds = random_inputs(analysis.inputs, seed)
    timings: list[BlockTiming] = []
    for block in analysis.blocks:
        if on_block:
            on_block(block.name)
        part = extract_partition(analysis, block.index, block.index)
        session = make_session(part.model, threads)
        ms = median_latency_ms(session, env, runs=runs, warmup=warmup)
        env.update(run(session, env))
        timings.append(BlockTiming(block.name, block.gflops, ms))
    return timings


@dataclass(frozen=True)
class Comparison:
    """Estimated (time proportional to FLOPs) against measured block times."""

    host_gflops_per_s: float
    pearson_r: float
    estimated_ms: tuple[float, ...]
    measured_ms: tuple[float, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        """measured / estimated, per block."""
        return tuple(
            m / e if e > 0 else math.inf
            for m, e in zip(self.measured_ms, self.estimated_ms, strict=True)
        )

    @property
    def mean_abs_pct_error(self) -> float:
        errors = [
            abs(m - e) / m
            for m, e in zip(self.measured_ms, self.estimated_ms, strict=True)
            if m > 0
        ]
        return 100.0 * statistics.fmean(errors) if errors else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "host_gflops_per_s": self.host_gflops_per_s,
            "pearson_r": self.pearson_r,
            "mean_abs_pct_error": self.mean_abs_pct_error,
        }


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; nan when either side is constant or has under 2 points."""
    if len(xs) < 2 or len(xs) != len(ys):
        return math.nan
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    if x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def compare(timings: Sequence[BlockTiming]) -> Comparison:
    """Fit this host's GFLOP/s and compare the FLOP-proportional estimate with timings."""
    total_gflop = sum(t.gflops for t in timings)
    total_s = sum(t.median_ms for t in timings) / 1000.0
    if total_s <= 0 or total_gflop <= 0:
        raise ModelError("nothing was measured (no work or no time)")
    rate = total_gflop / total_s
    estimated = tuple(t.gflops / rate * 1000.0 for t in timings)
    measured = tuple(t.median_ms for t in timings)
    return Comparison(rate, pearson(estimated, measured), estimated, measured)
