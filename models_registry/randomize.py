"""Random weights for models whose weights are placeholders.

The architectures shipped in the ``onnx`` wheel (``onnx/backend/test/data/light/``) carry
no weights: every weight is a ``ConstantOfShape`` node filled with one value. `randomize`
replaces every floating-point ``ConstantOfShape`` output, and every ``Constant`` that
feeds a weight slot (a Conv/Gemm/MatMul weight or bias, a BatchNormalization parameter),
with a float32 initializer of the same shape, drawn deterministically from ``seed`` and
the tensor's name, and scaled so activations stay finite:

- convolution and matrix weights: He uniform, in [-a, a] with a = sqrt(6 / fan_in)
  (standard deviation sqrt(2 / fan_in));
- biases and additive constants: uniform in [-0.01, 0.01];
- BatchNormalization: scale and variance uniform in [0.8, 1.2] (variance positive), bias
  and mean uniform in [-0.05, 0.05];
- multiplicative constants (Mul, Div): uniform in [0.8, 1.2]; PRelu slopes in [0, 0.25].
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import onnx
from onnx import helper

from models_registry.errors import ModelError
from models_registry.graph import build_graph, node_inputs
from models_registry.loading import ModelSource, canonicalize, load_model, read_model

WEIGHT_SLOTS = {
    ("Conv", 1), ("Conv", 2), ("ConvTranspose", 1), ("ConvTranspose", 2), ("Gemm", 0),
    ("Gemm", 1), ("Gemm", 2), ("MatMul", 0), ("MatMul", 1), ("BatchNormalization", 1),
    ("BatchNormalization", 2), ("BatchNormalization", 3), ("BatchNormalization", 4),
    ("PRelu", 1),
}  # fmt: skip


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(helper.get_attribute_value(attr))
    return default


def _uniform(
    rng: np.random.Generator, shape: tuple[int, ...], low: float, high: float
) -> np.ndarray:
    values = rng.random(shape, dtype=np.float32)
    values *= np.float32(high - low)
    values += np.float32(low)
    return values


def _values(
    role: tuple[onnx.NodeProto, int] | None, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    if role is None:
        return _uniform(rng, shape, -0.01, 0.01)
    node, slot = role
    op = node.op_type
    if (op in ("Conv", "ConvTranspose") and slot == 1) or (op in ("Gemm", "MatMul") and slot < 2):
        if op in ("Conv", "ConvTranspose"):
            fan_in = math.prod(shape[1:])
        elif op == "Gemm":
            transposed = _attr(node, "transB" if slot == 1 else "transA", 0)
            fan_in = shape[1 - transposed] if len(shape) == 2 else max(shape[0], 1)
            if slot == 0:
                fan_in = shape[transposed] if len(shape) == 2 else fan_in
        else:
            fan_in = shape[-2] if slot == 1 and len(shape) >= 2 else shape[-1]
        bound = math.sqrt(6.0 / max(fan_in, 1))
        return _uniform(rng, shape, -bound, bound)
    if op == "BatchNormalization":
        if slot in (1, 4):
            return _uniform(rng, shape, 0.8, 1.2)
        return _uniform(rng, shape, -0.05, 0.05)
    if op in ("Mul", "Div"):
        return _uniform(rng, shape, 0.8, 1.2)
    if op == "PRelu":
        return _uniform(rng, shape, 0.0, 0.25)
    return _uniform(rng, shape, -0.01, 0.01)


def randomize(source: ModelSource, seed: int = 0) -> onnx.ModelProto:
    """A copy of the model with placeholder weights replaced by random initializers.

    Inputs keep their (possibly dynamic) shapes; the result passes the ONNX checker and
    runs in onnxruntime. The same model and seed give the same bytes.
    """
    original = canonicalize(read_model(source))  # a copy: the caller's proto is untouched
    try:
        prepared = load_model(original)
    except ModelError as exc:
        if "dynamic dimensions" not in str(exc):
            raise
        prepared = None
    if prepared is None:
        # Weights' shapes do not depend on the inputs: infer with batch-free defaults.
        shapes = {}
        for value in original.graph.input:
            dims = value.type.tensor_type.shape.dim
            shapes[value.name] = tuple(
                d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims
            )
        inits = {init.name for init in original.graph.initializer}
        prepared = load_model(original, {k: v for k, v in shapes.items() if k not in inits})
    mg = build_graph(prepared)
    nodes = list(original.graph.node)
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in nodes:
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, slot))

    def role(name: str, depth: int = 0) -> tuple[onnx.NodeProto, int] | None:
        for node, slot in consumers.get(name, []):
            if all(out in mg.constants for out in node.output if out) and depth < 8:
                found = role(node.output[0], depth + 1)
                if found is not None:
                    return found
            elif not all(out in mg.constants for out in node.output if out):
                return node, slot
        return None

    replaced: dict[str, np.ndarray] = {}
    kept: list[onnx.NodeProto] = []
    for node in nodes:
        target = node.output[0] if len(node.output) == 1 else ""
        info = mg.info(target) if target else None
        is_float = info is not None and np.dtype(info.dtype).kind == "f"
        found = role(target) if target else None
        replace = is_float and (
            node.op_type == "ConstantOfShape"
            or (
                node.op_type == "Constant"
                and found is not None
                and (found[0].op_type, found[1]) in WEIGHT_SLOTS
            )
        )
        if replace and info is not None:
            replaced[target] = _values(found, info.shape, _rng(seed, target))
        else:
            kept.append(node)

    used = {name for node in kept for name in node_inputs(node)}
    used.update(value.name for value in original.graph.output)
    kept_inits = [init for init in original.graph.initializer if init.name in used]
    del original.graph.node[:]
    original.graph.node.extend(kept)
    del original.graph.initializer[:]
    original.graph.initializer.extend(kept_inits)
    for name, values in replaced.items():
        tensor = original.graph.initializer.add()
        tensor.name = name
        tensor.data_type = onnx.TensorProto.FLOAT
        tensor.dims.extend(values.shape)
        tensor.raw_data = values.tobytes()
    del original.graph.value_info[:]
    # The structure was checked by load_model; only weights changed.
    return original
