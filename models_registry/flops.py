"""Counting the work of one ONNX node from its inferred shapes.

A FLOP is one floating-point (or integer) arithmetic operation; a multiply-accumulate
(MAC) counts as 2 FLOPs. `RULES` documents the rule for every operator counted; the same
table is in docs/registry.md. Operators not in the table cost nothing and are reported
as uncounted by the analysis, so a user can see what was left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

from models_registry.loading import TensorInfo

#: Operators with one FLOP per output element.
ELEMENTWISE = frozenset(
    {
        "Abs", "Acos", "Acosh", "Add", "And", "Asin", "Asinh", "Atan", "Atanh", "BitShift",
        "Ceil", "Celu", "Clip", "Cos", "Cosh", "Div", "Elu", "Equal", "Erf", "Exp", "Floor",
        "Gelu", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish", "IsInf", "IsNaN",
        "LeakyRelu", "Less", "LessOrEqual", "Log", "Mish", "Mod", "Mul", "Neg", "Not", "Or",
        "Pow", "PRelu", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign",
        "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Sub", "Tan", "Tanh",
        "ThresholdedRelu", "Where", "Xor",
    }
)  # fmt: skip

#: Variadic element-wise operators: (inputs - 1) FLOPs per output element.
VARIADIC = frozenset({"Sum", "Max", "Min", "Mean"})

#: Data movement only: no arithmetic.
FREE = frozenset(
    {
        "Cast", "CastLike", "Concat", "Compress", "ConstantOfShape", "Constant", "DepthToSpace",
        "Dropout", "Expand", "EyeLike", "Flatten", "Gather", "GatherElements", "GatherND",
        "Identity", "NonZero", "OneHot", "Pad", "Reshape", "Resize", "ScatterElements",
        "ScatterND", "Shape", "Size", "Slice", "SpaceToDepth", "Split", "Squeeze", "Tile",
        "Transpose", "Unsqueeze", "Upsample",
    }
)  # fmt: skip

REDUCE = frozenset(
    {
        "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
        "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "ArgMax", "ArgMin",
    }
)  # fmt: skip

#: Human-readable rule per operator (or operator family), documented in docs/registry.md.
RULES: dict[str, str] = {
    "Conv": "2 x N x C_out x prod(out spatial) x (C_in / group) x prod(kernel) "
    "(one MAC per kernel tap, padding taps included; dilation spreads the taps and "
    "does not change their number), + 1 per output element with a bias",
    "ConvTranspose": "2 x N x C_in x prod(in spatial) x (C_out / group) x prod(kernel), "
    "+ 1 per output element with a bias",
    "ConvInteger / QLinearConv": "as Conv (integer MACs count the same)",
    "Gemm": "2 x M x N x K, + M x N with C",
    "MatMul / MatMulInteger / QLinearMatMul": "2 x prod(broadcast batch dims) x M x N x K",
    "MaxPool / AveragePool / LpPool": "prod(kernel) per output element",
    "GlobalAveragePool / GlobalMaxPool / GlobalLpPool": "1 per input element",
    "BatchNormalization": "2 per element (inference: y = a x + b with folded a, b)",
    "InstanceNormalization / LayerNormalization / GroupNormalization": "5 per element",
    "LRN": "2 x size + 3 per element (sum of squares over the window, then scale, power, divide)",
    "Softmax / LogSoftmax": "3 per element (exponent, sum, divide)",
    "element-wise (Add, Sub, Mul, Div, Relu, Sigmoid, Tanh, Clip, Pow, ...)": "1 per output "
    "element, transcendental or not",
    "Sum / Max / Min / Mean": "(number of inputs - 1) per output element",
    "Reduce* / ArgMax / ArgMin": "1 per input element",
    "QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear": "2 per element (scale, shift)",
    "Concat, Reshape, Flatten, Transpose, Slice, Gather, Pad, Dropout, Cast, ...": "0 "
    "(data movement)",
    "constant producers (Constant, ConstantOfShape, shape arithmetic on constants)": "0, "
    "and their outputs count as parameters, not activations",
}

COUNTED = ELEMENTWISE | VARIADIC | FREE | REDUCE | {
    "Conv", "ConvInteger", "QLinearConv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger",
    "QLinearMatMul", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "BatchNormalization", "InstanceNormalization",
    "LayerNormalization", "GroupNormalization", "LRN", "Softmax", "LogSoftmax",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
}  # fmt: skip


@dataclass(frozen=True)
class NodeCost:
    """The work of one node: multiply-accumulates (of convolutions and matrix products)
    and FLOPs (MACs x 2 plus everything else). ``counted`` is False for operators this
    module has no rule for, or whose shapes are unknown."""

    macs: int
    flops: int
    counted: bool = True


UNCOUNTED = NodeCost(0, 0, False)


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(node: onnx.NodeProto, ins: Sequence[TensorInfo | None], out: TensorInfo) -> NodeCost:
    weight_index = 3 if node.op_type == "QLinearConv" else 1
    weight = ins[weight_index] if len(ins) > weight_index else None
    if weight is None or len(weight.shape) < 2:
        return UNCOUNTED
    # W is (C_out, C_in / group, k...): each output element takes prod(W.shape[1:]) MACs.
    macs = _numel(out.shape) * _numel(weight.shape[1:])
    bias_index = 8 if node.op_type == "QLinearConv" else 2
    has_bias = len(node.input) > bias_index and bool(node.input[bias_index])
    flops = 2 * macs + (_numel(out.shape) if has_bias and node.op_type == "Conv" else 0)
    return NodeCost(macs, flops)


def _conv_transpose(
    node: onnx.NodeProto, ins: Sequence[TensorInfo | None], out: TensorInfo
) -> NodeCost:
    x, weight = ins[0], ins[1]
    if x is None or weight is None or len(weight.shape) < 2:
        return UNCOUNTED
    # W is (C_in, C_out / group, k...): each input element is scattered to
    # prod(W.shape[1:]) outputs.
    macs = _numel(x.shape) * _numel(weight.shape[1:])
    has_bias = len(node.input) > 2 and bool(node.input[2])
    return NodeCost(macs, 2 * macs + (_numel(out.shape) if has_bias else 0))


def _gemm(node: onnx.NodeProto, ins: Sequence[TensorInfo | None], out: TensorInfo) -> NodeCost:
    a = ins[0]
    if a is None or len(a.shape) != 2:
        return UNCOUNTED
    k = a.shape[0] if _attrs(node).get("transA", 0) else a.shape[1]
    macs = _numel(out.shape) * k
    has_c = len(node.input) > 2 and bool(node.input[2])
    return NodeCost(macs, 2 * macs + (_numel(out.shape) if has_c else 0))


def _matmul(node: onnx.NodeProto, ins: Sequence[TensorInfo | None], out: TensorInfo) -> NodeCost:
    index = 3 if node.op_type == "QLinearMatMul" else 0
    a = ins[index] if len(ins) > index else None
    if a is None or not a.shape:
        return UNCOUNTED
    macs = _numel(out.shape) * a.shape[-1]
    return NodeCost(macs, 2 * macs)


def node_cost(
    node: onnx.NodeProto,
    inputs: Sequence[TensorInfo | None],
    outputs: Sequence[TensorInfo | None],
) -> NodeCost:
    """The cost of `node` given its inputs' and outputs' static infos (None: unknown)."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx"):
        return UNCOUNTED
    if op in FREE:
        return NodeCost(0, 0)
    out = outputs[0] if outputs else None
    if out is None:
        return UNCOUNTED
    elems = _numel(out.shape)
    first = inputs[0] if inputs else None
    if op in ("Conv", "ConvInteger", "QLinearConv"):
        return _conv(node, inputs, out)
    if op == "ConvTranspose":
        return _conv_transpose(node, inputs, out)
    if op == "Gemm":
        return _gemm(node, inputs, out)
    if op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
        return _matmul(node, inputs, out)
    if op in ELEMENTWISE:
        return NodeCost(0, elems)
    if op in VARIADIC:
        return NodeCost(0, max(len([i for i in node.input if i]) - 1, 1) * elems)
    if op in ("MaxPool", "AveragePool", "LpPool"):
        kernel = _attrs(node).get("kernel_shape")
        if not isinstance(kernel, list):
            return UNCOUNTED
        return NodeCost(0, elems * _numel(kernel))
    if op in ("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", *REDUCE):
        return UNCOUNTED if first is None else NodeCost(0, _numel(first.shape))
    if op == "BatchNormalization":
        return NodeCost(0, 2 * elems)
    if op in ("InstanceNormalization", "LayerNormalization", "GroupNormalization"):
        return NodeCost(0, 5 * elems)
    if op == "LRN":
        size = _attrs(node).get("size", 1)
        return NodeCost(0, (2 * int(size if isinstance(size, int) else 1) + 3) * elems)
    if op in ("Softmax", "LogSoftmax"):
        return NodeCost(0, 3 * elems)
    if op in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
        return NodeCost(0, 2 * elems)
    return UNCOUNTED
