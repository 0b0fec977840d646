"""Early-exit heads, cascades and their calibration.

An exit head is its own small ONNX model whose one input is a block's output tensor.
`attach_exit` checks that the head fits (same rank and dtype; every fixed dimension equal)
and records its cost. Exit probabilities come from calibration data: for every sample,
the head's confidence is its maximum softmax probability, and the exit fires when the
confidence is at least the threshold. Head outputs that already are probabilities (every
value in [0, 1], each sample summing to 1 within 1e-3) are used as they are; anything
else is treated as logits and passed through a softmax over each sample's values.

Probabilities follow scenario-v1: an exit's ``prob`` is conditional on reaching it, i.e.
(samples that fire there) / (samples that reach it, not having fired at an earlier exit).
A cascade's ``exit_prob`` for its small model is the fraction of samples on which the
small model's confidence reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from models_registry.blocks import ModelAnalysis, analyse_model
from models_registry.errors import ModelError
from models_registry.loading import ModelSource, TensorInfo, read_model
from models_registry.partition import extract_partition
from models_registry.runtime import Feeds, make_session, run


def _shape_text(dims: Sequence[int | str]) -> str:
    return "[" + ",".join(str(d) for d in dims) + "]"


@dataclass(frozen=True)
class ExitHead:
    """A head checked against block ``after`` of a model, with its cost."""

    after: str
    model: onnx.ModelProto
    gflops: float
    params_mb: float

    def to_scenario(self, prob: float) -> dict[str, Any]:
        """The scenario-v1 ``exits`` entry, with a probability stated or calibrated."""
        if not 0.0 <= prob <= 1.0:
            raise ModelError(f"exit after {self.after!r}: probability {prob} is outside 0..1")
        return {
            "after": self.after,
            "prob": prob,
            "gflops": float(f"{self.gflops:.6g}"),
            "params_mb": float(f"{self.params_mb:.6g}"),
        }


def make_exit_head(
    analysis: ModelAnalysis, after: str, num_classes: int = 1000, seed: int = 0
) -> onnx.ModelProto:
    """A simple head for block ``after``: GlobalAveragePool (for rank >= 3), Flatten and a
    Gemm to ``num_classes`` logits, with random weights (for demos and tests)."""
    block = analysis.block(after)
    if block.index == len(analysis.blocks) - 1:
        raise ModelError(f"{after!r} is the last block; an exit after it is the model itself")
    if num_classes < 1:
        raise ModelError("an exit head needs at least one class")
    tensor = block.outputs[0]
    if np.dtype(tensor.dtype) != np.float32:
        raise ModelError(f"block {after!r} outputs {tensor.dtype}; exit heads need float32")
    rng = np.random.default_rng(seed)
    nodes = []
    current = tensor.name
    if len(tensor.shape) >= 3:
        nodes.append(helper.make_node("GlobalAveragePool", [current], ["exit_pooled"]))
        current = "exit_pooled"
        features = tensor.shape[1]
    else:
        features = int(np.prod(tensor.shape[1:])) if len(tensor.shape) > 1 else 1
    nodes.append(helper.make_node("Flatten", [current], ["exit_flat"], axis=1))
    bound = np.sqrt(6.0 / max(features, 1))
    weight = rng.uniform(-bound, bound, (num_classes, features)).astype(np.float32)
    bias = np.zeros(num_classes, np.float32)
    nodes.append(
        helper.make_node("Gemm", ["exit_flat", "exit_w", "exit_b"], ["exit_logits"], transB=1)
    )
    graph = helper.make_graph(
        nodes,
        f"exit_after_{after}",
        [helper.make_tensor_value_info(tensor.name, onnx.TensorProto.FLOAT, list(tensor.shape))],
        [
            helper.make_tensor_value_info(
                "exit_logits", onnx.TensorProto.FLOAT, [tensor.shape[0], num_classes]
            )
        ],
        initializer=[
            numpy_helper.from_array(weight, "exit_w"),
            numpy_helper.from_array(bias, "exit_b"),
        ],
    )
    head = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="continuum"
    )
    head.ir_version = 8
    onnx.checker.check_model(head)
    return head


def attach_exit(analysis: ModelAnalysis, after: str, head: ModelSource) -> ExitHead:
    """Check that ``head`` takes block ``after``'s output and record its cost."""
    block = analysis.block(after)
    if block.index == len(analysis.blocks) - 1:
        raise ModelError(f"{after!r} is the last block; an exit after it is the model itself")
    tensor = block.outputs[0]
    raw = read_model(head)
    inits = {init.name for init in raw.graph.initializer}
    head_inputs = [value for value in raw.graph.input if value.name not in inits]
    if len(head_inputs) != 1:
        raise ModelError(
            f"an exit head must have exactly one input, this one has {len(head_inputs)}"
        )
    value = head_inputs[0]
    tensor_type = value.type.tensor_type
    dims: list[int | str] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in tensor_type.shape.dim
    ]
    head_dtype = (
        np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        if tensor_type.elem_type
        else "?"
    )
    fits = (
        head_dtype == tensor.dtype
        and len(dims) == len(tensor.shape)
        and all(not isinstance(d, int) or d == s for d, s in zip(dims, tensor.shape, strict=True))
    )
    if not fits:
        raise ModelError(
            f"exit head input {value.name!r} is {_shape_text(dims)} {head_dtype}, but block "
            f"{after!r} outputs {_shape_text(tensor.shape)} {tensor.dtype}"
        )
    head_analysis = analyse_model(raw, {value.name: tensor.shape})
    model = head_analysis.model
    if value.name != tensor.name:
        model = _rename_input(model, value.name, tensor.name)
    return ExitHead(after, model, head_analysis.total_gflops, head_analysis.params_mb)


def _rename_input(model: onnx.ModelProto, old: str, new: str) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in out.graph.input:
        if value.name == old:
            value.name = new
    for node in out.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    return out


def load_samples(paths: Sequence[str | Path], info: TensorInfo) -> list[np.ndarray]:
    """Calibration samples for an input: ``.npy`` (a batch along axis 0) or ``.npz``
    (every array, each a batch). Each sample keeps the input's batch dimension."""
    arrays: list[tuple[str, np.ndarray]] = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise ModelError(f"{path}: no such calibration file")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    arrays.extend((f"{path}[{key}]", archive[key]) for key in archive.files)
            elif path.suffix == ".npy":
                arrays.append((str(path), np.load(path, allow_pickle=False)))
            else:
                raise ModelError(f"{path}: calibration data must be .npy or .npz")
        except (OSError, ValueError) as exc:
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"{path}: not a readable numpy file ({exc})") from None
    samples: list[np.ndarray] = []
    for label, array in arrays:
        if tuple(array.shape) == info.shape:
            samples.append(array.astype(info.dtype))
        elif info.shape and info.shape[0] == 1 and tuple(array.shape[1:]) == info.shape[1:]:
            samples.extend(array[i : i + 1].astype(info.dtype) for i in range(array.shape[0]))
        else:
            raise ModelError(
                f"{label} has shape {_shape_text(array.shape)}; input {info.name!r} needs "
                f"{_shape_text(info.shape)} or a batch of [K,{','.join(map(str, info.shape[1:]))}]"
            )
    if not samples:
        raise ModelError("no calibration samples were given")
    return samples


def confidence(output: np.ndarray) -> np.ndarray:
    """Max softmax probability of each sample (see the module docstring)."""
    values = np.asarray(output, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(1, -1)
    is_prob = (
        flat.min() >= 0.0 and flat.max() <= 1.0 and np.allclose(flat.sum(axis=1), 1.0, atol=1e-3)
    )
    if not is_prob:
        shifted = flat - flat.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        flat = exp / exp.sum(axis=1, keepdims=True)
    return flat.max(axis=1)


@dataclass(frozen=True)
class ExitCalibration:
    after: str
    reached: int
    fired: int
    head: ExitHead

    @property
    def prob(self) -> float:
        return self.fired / self.reached if self.reached else 0.0

    def to_scenario(self) -> dict[str, Any]:
        return self.head.to_scenario(round(self.prob, 6))


def _single_input(analysis: ModelAnalysis) -> TensorInfo:
    if len(analysis.inputs) != 1:
        raise ModelError("calibration needs a model with exactly one input")
    return analysis.inputs[0]


def calibrate_exits(
    analysis: ModelAnalysis,
    heads: Sequence[ExitHead],
    samples: Sequence[np.ndarray],
    threshold: float,
    *,
    threads: int = 1,
    on_sample: Callable[[int], None] | None = None,
) -> list[ExitCalibration]:
    """How often each exit fires on ``samples`` at ``threshold`` (max softmax)."""
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"threshold {threshold} is outside 0..1")
    if not heads:
        raise ModelError("no exit heads to calibrate")
    info = _single_input(analysis)
    ordered = sorted(heads, key=lambda head: analysis.block_index(head.after))
    if len({head.after for head in ordered}) != len(ordered):
        raise ModelError("two exit heads after the same block")
    prefixes = []
    start = 0
    for head in ordered:
        end = analysis.block_index(head.after)
        prefixes.append(make_session(extract_partition(analysis, start, end).model, threads))
        start = end + 1
    head_sessions = [make_session(head.model, threads) for head in ordered]
    reached = [0] * len(ordered)
    fired = [0] * len(ordered)
    for k, sample in enumerate(samples):
        env: Feeds = {info.name: sample}
        for i, (prefix, head_session) in enumerate(zip(prefixes, head_sessions, strict=True)):
            env.update(run(prefix, env))
            reached[i] += 1
            outputs = run(head_session, env)
            first_output = head_session.get_outputs()[0].name
            if float(confidence(outputs[first_output])[0]) >= threshold:
                fired[i] += 1
                break
        if on_sample:
            on_sample(k)
    return [
        ExitCalibration(head.after, reached[i], fired[i], head) for i, head in enumerate(ordered)
    ]


def calibrate_cascade(
    small: ModelSource,
    samples: Sequence[np.ndarray],
    threshold: float,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    threads: int = 1,
) -> float:
    """The small model's ``exit_prob``: the fraction of samples it is confident on."""
    if not 0.0 <= threshold <= 1.0:
        raise ModelError(f"threshold {threshold} is outside 0..1")
    analysis = analyse_model(small, input_shapes)
    info = _single_input(analysis)
    session = make_session(analysis.model, threads)
    output = session.get_outputs()[0].name
    confident = 0
    for sample in samples:
        if sample.shape != info.shape:
            raise ModelError(
                f"sample shape {_shape_text(sample.shape)} does not fit input "
                f"{info.name!r} {_shape_text(info.shape)}"
            )
        conf = confidence(run(session, {info.name: sample})[output])
        confident += int(float(conf[0]) >= threshold)
    return confident / len(samples) if samples else 0.0
