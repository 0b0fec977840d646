from __future__ import annotations

import math
from collections.abc import Callable

import onnx
import pytest

from models_registry import BlockTiming, ModelError, analyse_model, compare, profile_blocks


def test_profile_every_block(randomized: Callable[[str], onnx.ModelProto]) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    seen: list[str] = []
    timings = profile_blocks(analysis, runs=3, warmup=1, threads=1, on_block=seen.append)
    assert [t.name for t in timings] == analysis.block_names == seen
    assert all(t.median_ms > 0 for t in timings)
    comparison = compare(timings)
    assert comparison.host_gflops_per_s > 0
    assert -1.0 <= comparison.pearson_r <= 1.0
    assert sum(comparison.estimated_ms) == pytest.approx(sum(comparison.measured_ms))


def test_compare_on_known_numbers() -> None:
    exact = [BlockTiming("a", 1.0, 10.0), BlockTiming("b", 2.0, 20.0), BlockTiming("c", 0.5, 5.0)]
    result = compare(exact)
    assert result.host_gflops_per_s == pytest.approx(100.0)
    assert result.pearson_r == pytest.approx(1.0)
    assert result.ratios == pytest.approx((1.0, 1.0, 1.0))
    assert result.mean_abs_pct_error == pytest.approx(0.0)
    skewed = compare([BlockTiming("a", 1.0, 30.0), BlockTiming("b", 1.0, 10.0)])
    assert math.isnan(skewed.pearson_r)  # equal FLOPs, different times: no correlation
    assert skewed.ratios == pytest.approx((1.5, 0.5))
    with pytest.raises(ModelError, match="nothing was measured"):
        compare([BlockTiming("a", 0.0, 0.0)])
