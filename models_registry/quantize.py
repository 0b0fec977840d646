"""int8 variants through onnxruntime's quantization.

Dynamic by default: weights of Conv, MatMul and Gemm become int8 and activations are
quantized on the fly. Static (`quantize_static`) when calibration inputs are given:
activations' ranges are fixed from those inputs, so the int8 model runs int8 kernels
from end to end (QDQ format) instead of quantizing activations on every request. The
variant is recorded with its size, its median latency on this host next to the fp32
model's (the control plane costs the variant by that ratio), and its output deviation
from fp32 on random inputs. Accuracy is measured by `models_registry.accuracy` on
labelled data the user provides.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
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
    method: str = "dynamic"  # or "static" (calibrated activations)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
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
    calibration: Sequence[np.ndarray] | None = None,
) -> QuantizedVariant:
    """Quantize to int8 and measure the variant: static quantization with `calibration`
    inputs (samples of the model's first input), dynamic without."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = load_model(source, input_shapes)
    fp32 = model.SerializeToString()
    inputs = graph_inputs(model)
    with tempfile.TemporaryDirectory(prefix="continuum-quant-") as tmp:
        target = Path(tmp) / "int8.onnx"
        try:
            with _quiet_root_logger():
                if calibration:
                    _quantize_static(model, Path(tmp), target, inputs[0].name, calibration)
                else:
                    quantize_dynamic(model, target, weight_type=QuantType.QInt8)
        except Exception as exc:  # the quantizer raises many untyped errors
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelError(f"int8 quantization failed: {first}") from None
        int8 = target.read_bytes()
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
        method="static" if calibration else "dynamic",
    )


def _quantize_static(
    model: onnx.ModelProto, tmp: Path, target: Path, name: str, samples: Sequence[np.ndarray]
) -> None:
    """onnxruntime's static quantization, activations' ranges from `samples`."""
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self._left, None)
            return None if sample is None else {name: sample}

    source = tmp / "fp32.onnx"
    onnx.save(model, source)  # quantize_static reads a path (and writes beside it)
    quantize_static(
        source, target, Reader(), activation_type=QuantType.QInt8, weight_type=QuantType.QInt8
    )


def parse_model_bytes(data: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    return model
