"""Reading, checking and preparing an ONNX model for analysis.

`load_model` turns bytes or a path into a canonical, checked, shape-inferred model:

- opset 9 or later in the default domain;
- IR version at least 4, with initializers that were also listed as graph inputs (IR 3
  style) turned into plain constants;
- every real input fully static (``input_shapes`` fixes dynamic dimensions);
- ``Shape`` nodes over static tensors folded into constants, so that shape arithmetic
  belongs to the constant (weight) part of the graph;
- every tensor shaped: where onnx's static inference leaves a shape unknown (shape
  arithmetic it cannot follow), one onnxruntime run on zeros measures it
  (`models_registry.shape_probe`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from models_registry.errors import ModelError
from models_registry.shape_probe import measure_shapes

MIN_OPSET = 9

ModelSource = bytes | str | Path | onnx.ModelProto


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's name, static shape and numpy dtype name."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


def parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Parse ``NAME=1,3,224,224`` strings (as given on the command line)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        if not sep or not name or not dims:
            raise ModelError(f"input shape {spec!r} is not of the form NAME=1,3,224,224")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise ModelError(
                f"input shape {spec!r}: dimensions must be integers separated by commas"
            ) from None
        if any(d <= 0 for d in shape):
            raise ModelError(f"input shape {spec!r}: dimensions must be positive")
        shapes[name] = shape
    return shapes


def read_model(source: ModelSource) -> onnx.ModelProto:
    """Parse an ONNX model from bytes, a path or a proto, with clear errors."""
    if isinstance(source, onnx.ModelProto):
        return source
    label = "the given bytes"
    if isinstance(source, str | Path):
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such file")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise ModelError(f"{label} is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf's DecodeError; its stubs are not installed
        raise ModelError(
            f"{label} is not an ONNX model, or is truncated (protobuf parsing failed)"
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise ModelError(f"{label} is not an ONNX model, or is truncated (no graph found)")
    return model


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    dims: list[int | str] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or "?")
    return dims


def real_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers."""
    inits = {init.name for init in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in inits]


def input_names(model: onnx.ModelProto) -> list[str]:
    """Names of the real (non-initializer) inputs."""
    return [value.name for value in real_inputs(model)]


def _canonicalize_in_place(model: onnx.ModelProto) -> None:
    inits = {init.name for init in model.graph.initializer}
    keep = [value for value in model.graph.input if value.name not in inits]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)
    model.ir_version = min(max(model.ir_version, 4), runtime_max_ir())


@functools.cache
def runtime_max_ir() -> int:
    """The newest IR version the installed onnxruntime loads.

    The onnx package can be newer than onnxruntime and stamps models with its own IR
    version (onnx 1.23 writes 14, onnxruntime 1.31 loads up to 13); a model that uses no
    newer feature runs unchanged with the lower number, so models are stamped with this.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    for version in range(onnx.IR_VERSION, 3, -1):
        probe = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=version
        )
        try:
            ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        except Exception:  # onnxruntime raises its own Fail type for an unsupported IR
            continue
        return version
    return 4


def canonicalize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy of `model` with IR >= 4 and initializer-inputs removed from the inputs."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    _canonicalize_in_place(out)
    return out


def _set_input_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]], names: set[str]
) -> None:
    inputs = {value.name: value for value in model.graph.input if value.name in names}
    for name, shape in input_shapes.items():
        if name not in inputs:
            raise ModelError(
                f"--input-shape names {name!r}, but the model's inputs are "
                f"{', '.join(sorted(inputs)) or '(none)'}"
            )
        value = inputs[name]
        declared = value.type.tensor_type.shape.dim
        if len(declared) and len(declared) != len(shape):
            raise ModelError(
                f"input {name!r} has rank {len(declared)} ({_dims(value)}), "
                f"but --input-shape gives {len(shape)} dimensions"
            )
        for dim, size in zip(declared, shape, strict=False):
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
                raise ModelError(
                    f"input {name!r} has fixed shape {_dims(value)}; "
                    f"--input-shape {list(shape)} contradicts it"
                )
        value.type.tensor_type.shape.Clear()
        for size in shape:
            value.type.tensor_type.shape.dim.add().dim_value = int(size)


def _check_static_inputs(model: onnx.ModelProto, names: set[str]) -> None:
    for value in model.graph.input:
        if value.name not in names:
            continue
        dims = _dims(value)
        if not value.type.tensor_type.HasField("shape") or any(
            not isinstance(d, int) for d in dims
        ):
            shown = ",".join(str(d) for d in dims) if dims else "unknown rank"
            raise ModelError(
                f"input {value.name!r} has dynamic dimensions [{shown}]; "
                f"give a static shape with --input-shape {value.name}=1,3,224,224"
            )


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    del model.graph.value_info[:]
    for output in model.graph.output:
        # Declared output shapes may be symbolic; let inference fill them in.
        output.type.tensor_type.ClearField("shape")
    try:
        return shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"shape inference failed: {first}") from None


def tensor_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Every named tensor's inferred type: inputs, intermediates, outputs, initializers."""
    types: dict[str, onnx.TypeProto] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type
    for init in graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    return types


def static_info(name: str, type_proto: onnx.TypeProto | None) -> TensorInfo | None:
    """The TensorInfo of a tensor whose shape is fully known, else None."""
    if type_proto is None or not type_proto.HasField("tensor_type"):
        return None
    tensor_type = type_proto.tensor_type
    if not tensor_type.HasField("shape") or tensor_type.elem_type == 0:
        return None
    shape: list[int] = []
    for dim in tensor_type.shape.dim:
        if not dim.HasField("dim_value") or dim.dim_value < 0:
            return None
        shape.append(int(dim.dim_value))
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
    return TensorInfo(name, tuple(shape), np.dtype(dtype).name)


def _fold_shapes(model: onnx.ModelProto) -> bool:
    """Replace Shape/Size nodes over static tensors by initializers. True if any."""
    types = tensor_types(model)
    kept: list[onnx.NodeProto] = []
    folded = False
    for node in model.graph.node:
        if node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
            info = static_info(node.input[0], types.get(node.input[0]))
            if info is not None:
                if node.op_type == "Size":
                    value = np.array(int(np.prod(info.shape)), dtype=np.int64)
                else:
                    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                    start = int(attrs.get("start", 0))
                    end = attrs.get("end")
                    dims = list(info.shape)
                    value = np.array(dims[start : None if end is None else int(end)], np.int64)
                model.graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
                folded = True
                continue
        kept.append(node)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(kept)
    return folded


#: Initializers larger than this are left out of checking and shape inference (their
#: values are never needed for shapes), which keeps big models fast to load.
_SKELETON_ELEMENTS = 1024


def _is_large(init: onnx.TensorProto) -> bool:
    count = 1
    for dim in init.dims:
        count *= dim
    return count > _SKELETON_ELEMENTS


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without its large initializers, which become typed graph inputs."""
    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    skeleton.producer_name = model.producer_name
    graph, source = skeleton.graph, model.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    graph.output.extend(source.output)
    for init in source.initializer:
        if not _is_large(init):
            graph.initializer.append(init)
        else:
            graph.input.append(
                helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    return skeleton


def _restore(model: onnx.ModelProto, skeleton: onnx.ModelProto) -> None:
    """Give `model` the skeleton's prepared graph, keeping its own large initializers."""
    graph, prepared = model.graph, skeleton.graph
    large = {init.name for init in graph.initializer if _is_large(init)}
    for field_name in ("node", "input", "output", "value_info"):
        del getattr(graph, field_name)[:]
    graph.node.extend(prepared.node)
    graph.input.extend(value for value in prepared.input if value.name not in large)
    graph.output.extend(prepared.output)
    graph.value_info.extend(prepared.value_info)
    known = {init.name for init in graph.initializer}
    graph.initializer.extend(init for init in prepared.initializer if init.name not in known)
    model.ir_version = skeleton.ir_version


def load_model(
    source: ModelSource, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> onnx.ModelProto:
    """Read, check and shape-infer a model; see the module docstring.

    Returns a new proto (a given proto is not modified). Raises ModelError for anything
    that is not a usable ONNX model.
    """
    model = read_model(source)
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
    _canonicalize_in_place(model)
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise ModelError(
            f"the model uses opset {opset or 'none'} of the default domain; "
            f"opset {MIN_OPSET} or later is required"
        )
    skeleton = _skeleton(model)
    if input_shapes:
        _set_input_shapes(skeleton, input_shapes, set(input_names(model)))
    if not input_names(model):
        raise ModelError("the model has no inputs (every graph input is an initializer)")
    _check_static_inputs(skeleton, set(input_names(model)))
    try:
        onnx.checker.check_model(skeleton)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"the model fails the ONNX checker: {first}") from None
    skeleton = _infer(skeleton)
    if _fold_shapes(skeleton):
        skeleton = _infer(skeleton)
    _restore(model, skeleton)
    _measure_unknown(model, skeleton)
    return model


def _measure_unknown(model: onnx.ModelProto, skeleton: onnx.ModelProto) -> None:
    """Give every node output that static inference left unshaped its measured shape."""
    types = tensor_types(model)
    # Only what something reads: an unused optional output (Dropout's mask) stays as is.
    used = {name for node in model.graph.node for name in node.input}
    used.update(value.name for value in model.graph.output)
    unknown = [
        name
        for node in model.graph.node
        for name in node.output
        if name in used and static_info(name, types.get(name)) is None
    ]
    if not unknown:
        return
    inputs = {}
    for value in skeleton.graph.input:
        info = static_info(value.name, value.type)
        if value.name in input_names(model) and info is not None:
            inputs[value.name] = (info.shape, info.dtype)
    measured = measure_shapes(model, unknown, inputs)
    graph = model.graph
    kept = [v for v in graph.value_info if v.name not in measured]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    outputs = {v.name for v in graph.output}
    for name in unknown:
        shape, elem = measured[name]
        inferred = types.get(name)
        if inferred is not None and inferred.tensor_type.elem_type:
            elem = inferred.tensor_type.elem_type  # the graph's own type, where it says
        value = helper.make_tensor_value_info(name, elem, list(shape))
        if name in outputs:
            for output in graph.output:
                if output.name == name:
                    output.CopyFrom(value)
        else:
            graph.value_info.append(value)
