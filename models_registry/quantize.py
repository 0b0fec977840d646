"""int8 variants through onnxruntime's dynamic quantization.

Weights of Conv, MatMul and Gemm become int8 (activations are quantized on the fly). The
variant is recorded with its size, its median latency on this host next to the fp32
model's, and its output deviation from fp32 on random inputs, so that the solver can
choose between variants. Accuracy is not measured here: the user supplies it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from models_registry.errors import ModelError
from models_registry.loading import ModelSource, load_model
from models_registry.profiling import median_latency_ms
from models_registry.runtime import graph_inputs, make_session, random_inputs, run
from models_registry.verify import difference


@dataclass(frozen=True)
class QuantizedVariant:
    """An int8 model and how it compares with its fp32 original on this host."""

    data: bytes
    fp32_bytes: int
    int8_bytes: int
    fp32_latency_ms: float
    int8_latency_ms: float
    max_abs: float
    max_rel: float

    def to_json(self) -> dict[str, Any]:
        return {
            "fp32_mb": self.fp32_bytes / 1e6,
            "int8_mb": self.int8_bytes / 1e6,
            "size_ratio": self.int8_bytes / max(self.fp32_bytes, 1),
            "fp32_latency_ms": self.fp32_latency_ms,
            "int8_latency_ms": self.int8_latency_ms,
            "speedup": self.fp32_latency_ms / max(self.int8_latency_ms, 1e-9),
            "max_abs_diff": self.max_abs,
            "max_rel_diff": self.max_rel,
        }


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs advice on the root logger; keep it off the console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize_int8(
    source: ModelSource,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    runs: int = 10,
    warmup: int = 2,
    threads: int = 1,
    seed: int = 0,
) -> QuantizedVariant:
    """Quantize weights to int8 (dynamic quantization) and measure the variant."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = load_model(source, input_shapes)
    fp32 = model.SerializeToString()
    with tempfile.TemporaryDirectory(prefix="continuum-quant-") as tmp:
        target = Path(tmp) / "int8.onnx"
        try:
            with _quiet_root_logger():
                quantize_dynamic(model, target, weight_type=QuantType.QInt8)
        except Exception as exc:  # the quantizer raises many untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelError(f"int8 quantization failed: {first}") from None
        int8 = target.read_bytes()
    inputs = graph_inputs(model)
    feeds = random_inputs(inputs, seed)
    fp32_session = make_session(fp32, threads)
    int8_session = make_session(int8, threads)
    expected = run(fp32_session, feeds)
    actual = run(int8_session, feeds)
    worst_abs, worst_rel = 0.0, 0.0
    for name, value in expected.items():
        abs_diff, rel_diff = difference(actual[name].astype(value.dtype), value)
        worst_abs, worst_rel = max(worst_abs, abs_diff), max(worst_rel, rel_diff)
    return QuantizedVariant(
        data=int8,
        fp32_bytes=len(fp32),
        int8_bytes=len(int8),
        fp32_latency_ms=median_latency_ms(fp32_session, feeds, runs=runs, warmup=warmup),
        int8_latency_ms=median_latency_ms(int8_session, feeds, runs=runs, warmup=warmup),
        max_abs=worst_abs,
        max_rel=worst_rel,
    )


def parse_model_bytes(data: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    return model
