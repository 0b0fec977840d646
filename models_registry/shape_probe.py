"""Shapes that onnx's static inference leaves unknown, measured by one run on zeros.

Models exported from other frameworks compute some shapes at run time. PaddleOCR's
text-direction classifier (`ch_ppocr_mobile_v2.0_cls_infer.onnx`, shipped in the
`rapidocr-onnxruntime` wheel) reshapes by `Concat(Cast(Slice(Cast(Shape(x)))), 200)`:
onnx's data propagation stops at the int32 casts, so even with every input fixed the
Reshape's output, and everything after it, has no shape, and the model could not be
split or costed. With the inputs static, one onnxruntime run on zeros gives every
tensor's real shape at those inputs; the registry then records them as if inferred.
A shape that depends on the input's values (NonZero, a data-dependent Loop) is the one
zeros give: such models are rare among the vision and speech models this serves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper

from models_registry.errors import ModelError


def measure_shapes(
    model: onnx.ModelProto, names: Sequence[str], inputs: dict[str, tuple[tuple[int, ...], str]]
) -> dict[str, tuple[tuple[int, ...], int]]:
    """`names` -> (shape, onnx element type), from running `model` once on zeros of
    `inputs` (name -> (static shape, numpy dtype name))."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    # Untyped outputs: onnxruntime types them itself, and these are the unknown ones.
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    feeds = {name: np.zeros(shape, dtype=dtype) for name, (shape, dtype) in inputs.items()}
    try:
        session = ort.InferenceSession(
            probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        values = session.run(list(names), feeds)
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"the shape of {names[0]!r} could not be inferred, and running the model once on "
            f"zeros to measure it failed: {first}"
        ) from None
    out: dict[str, tuple[tuple[int, ...], int]] = {}
    for name, value in zip(names, values, strict=True):
        array = np.asarray(value)
        elem = helper.np_dtype_to_tensor_dtype(array.dtype)
        out[name] = (tuple(int(d) for d in array.shape), elem)
    return out
