from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx

from models_registry import analyse_model, quantize_int8


def test_int8_variant_is_smaller_and_recorded(
    randomized: Callable[[str], onnx.ModelProto],
) -> None:
    variant = quantize_int8(randomized("squeezenet"), runs=3, warmup=1, threads=1)
    # int8 weights: about a quarter of the fp32 bytes
    assert variant.int8_bytes < 0.4 * variant.fp32_bytes
    assert variant.fp32_latency_ms > 0 and variant.int8_latency_ms > 0
    # quantization changes the outputs, a little, and the change is measured
    assert 0 < variant.max_abs < 1 and 0 < variant.max_rel < 1
    record = variant.to_json()
    assert "accuracy" not in record
    assert record["int8_mb"] == variant.int8_bytes / 1e6
    quantized = analyse_model(variant.data)
    assert {"ConvInteger"} <= {n.op_type for n in quantized.model.graph.node}
    assert len(quantized.blocks) >= 2
    assert quantized.params_mb < 0.4 * analyse_model(randomized("squeezenet")).params_mb


def test_static_int8_with_calibration_inputs(
    randomized: Callable[[str], onnx.ModelProto],
) -> None:
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 3, 224, 224)).astype(np.float32) for _ in range(2)]
    variant = quantize_int8(randomized("squeezenet"), runs=2, warmup=1, calibration=samples)
    assert variant.to_json()["method"] == "static"
    ops = {n.op_type for n in analyse_model(variant.data).model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # activations quantized too
    assert quantize_int8(randomized("squeezenet"), runs=1, warmup=0).method == "dynamic"
