"""onnxruntime helpers shared by verification, quantization, exits and profiling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from models_registry.errors import ModelError
from models_registry.loading import TensorInfo, static_info

Feeds = dict[str, np.ndarray]


def model_bytes(model: onnx.ModelProto | bytes) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


def make_session(model: onnx.ModelProto | bytes, threads: int = 0) -> ort.InferenceSession:
    """A CPU session; ``threads`` = intra-op threads (0: onnxruntime's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model_bytes(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"onnxruntime cannot load the model: {first}") from None


def graph_inputs(model: onnx.ModelProto) -> list[TensorInfo]:
    """Static infos of a model's real inputs (error if a dimension is not fixed)."""
    inits = {init.name for init in model.graph.initializer}
    infos: list[TensorInfo] = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        info = static_info(value.name, value.type)
        if info is None:
            raise ModelError(
                f"input {value.name!r} has dynamic dimensions; give --input-shape "
                f"{value.name}=1,3,224,224"
            )
        infos.append(info)
    return infos


def graph_outputs(model: onnx.ModelProto) -> list[str]:
    return [value.name for value in model.graph.output]


def random_inputs(infos: Sequence[TensorInfo], seed: int = 0) -> Feeds:
    """Standard-normal floats; integers uniform in [0, 10); booleans fair coins."""
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for info in infos:
        dtype = np.dtype(info.dtype)
        if dtype.kind == "f":
            feeds[info.name] = rng.standard_normal(info.shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[info.name] = rng.integers(0, 10, info.shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[info.name] = rng.integers(0, 2, info.shape).astype(bool)
        else:
            raise ModelError(f"input {info.name!r}: cannot make random values of {info.dtype}")
    return feeds


def run(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> Feeds:
    """Run a session on the feeds it needs (by name); outputs by name."""
    names = [value.name for value in session.get_outputs()]
    needed = {value.name: feeds[value.name] for value in session.get_inputs()}
    values = session.run(names, needed)
    return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}
