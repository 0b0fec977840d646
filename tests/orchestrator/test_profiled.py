"""Blocks costed by their profiled times, int8 variants by their measured speed
(orchestrator/profiled.py)."""

from __future__ import annotations

import math

import pytest

from orchestrator.profiled import block_times, profiled_layers, variant_layers, variant_ratio

BLOCKS = [
    {"name": "conv", "gflops": 0.9, "params_mb": 1.0, "out_mb": 0.5},
    {"name": "fc6", "gflops": 0.1, "params_mb": 150.0, "out_mb": 0.01},
]


def test_a_memory_bound_block_gets_its_measured_share_of_the_models_gflop() -> None:
    # fc6 has a tenth of the FLOPs and takes three quarters of the time.
    layers = profiled_layers(BLOCKS, {"profile": {"block_ms": {"conv": 10.0, "fc6": 30.0}}})
    assert [b["gflops"] for b in layers] == pytest.approx([0.25, 0.75])
    assert [b["params_mb"] for b in layers] == [1.0, 150.0]
    assert BLOCKS[1]["gflops"] == 0.1  # the row is not changed


@pytest.mark.parametrize(
    "detail",
    [
        {},
        {"profile": {"block_ms": {"conv": 10.0}}},  # fc6 would be free
        {"profile": {"block_ms": {"conv": 10.0, "fc6": math.nan}}},
        {"profile": {"block_ms": {"conv": 10.0, "fc6": -1.0}}},
        {"profile": {"block_ms": {"conv": 0.0, "fc6": 0.0}}},
        {"profile": "garbage"},
    ],
)
def test_no_usable_profile_keeps_the_flops(detail: dict[str, object]) -> None:
    assert profiled_layers(BLOCKS, detail) == BLOCKS


def test_block_times_in_chain_order() -> None:
    detail = {"profile": {"block_ms": {"fc6": 3.0, "conv": 1.0}}}
    assert block_times(detail, ["conv", "fc6"]) == [1.0, 3.0]


def test_an_int8_variant_costs_its_source_times_the_measured_ratio() -> None:
    assert variant_ratio({"fp32_latency_ms": 5.0, "int8_latency_ms": 31.0}) == pytest.approx(6.2)
    for bad in ({}, {"fp32_latency_ms": 0.0, "int8_latency_ms": 3.0},
                {"fp32_latency_ms": 5.0, "int8_latency_ms": math.inf}):  # fmt: skip
        assert variant_ratio(bad) is None
    source = profiled_layers(BLOCKS, {"profile": {"block_ms": {"conv": 10.0, "fc6": 30.0}}})
    same = variant_layers([dict(b) for b in BLOCKS], source, 2.0)
    assert [b["gflops"] for b in same] == pytest.approx([0.5, 1.5])
    # A variant whose chain differs: its own proportions, the source's total times the ratio.
    other = [{**BLOCKS[0], "name": "q"}, {**BLOCKS[1], "name": "r"}]
    scaled = variant_layers(other, source, 2.0)
    assert [b["gflops"] for b in scaled] == pytest.approx([1.8, 0.2])
