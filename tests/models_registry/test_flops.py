"""FLOP rules per operator, and the MACs of real architectures against published figures."""

from __future__ import annotations

import onnx
import pytest
from onnx import helper

from models_registry import FLOP_RULES, TensorInfo, analyse_model, node_cost

from .conftest import light_path


def t(*shape: int) -> TensorInfo:
    return TensorInfo("t", shape, "float32")


def test_conv_with_groups_dilation_and_bias() -> None:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=4, dilations=[2, 2])
    # 1x16x10x10 -> 1x32x6x6 with 3x3 taps over 16/4 = 4 input channels each
    cost = node_cost(node, [t(1, 16, 10, 10), t(32, 4, 3, 3), t(32)], [t(1, 32, 6, 6)])
    macs = 32 * 6 * 6 * 4 * 3 * 3
    assert cost.macs == macs
    assert cost.flops == 2 * macs + 32 * 6 * 6


def test_conv_without_bias_and_conv_transpose() -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"])
    cost = node_cost(conv, [t(2, 3, 8, 8), t(5, 3, 1, 1)], [t(2, 5, 8, 8)])
    assert cost.flops == 2 * cost.macs == 2 * (2 * 5 * 64 * 3)
    transpose = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2])
    # C_in=8, C_out=4 (group 1), 3x3 kernel, input 5x5 -> output 11x11
    cost = node_cost(transpose, [t(1, 8, 5, 5), t(8, 4, 3, 3), t(4)], [t(1, 4, 11, 11)])
    assert cost.macs == 8 * 25 * 4 * 9
    assert cost.flops == 2 * cost.macs + 4 * 121


def test_gemm_and_matmul() -> None:
    gemm = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transB=1)
    cost = node_cost(gemm, [t(2, 300), t(10, 300), t(10)], [t(2, 10)])
    assert (cost.macs, cost.flops) == (2 * 10 * 300, 2 * 2 * 10 * 300 + 20)
    transposed_a = helper.make_node("Gemm", ["a", "b"], ["y"], transA=1)
    assert node_cost(transposed_a, [t(300, 2), t(300, 10)], [t(2, 10)]).macs == 6000
    matmul = helper.make_node("MatMul", ["a", "b"], ["y"])
    cost = node_cost(matmul, [t(4, 2, 8, 16), t(16, 5)], [t(4, 2, 8, 5)])
    assert (cost.macs, cost.flops) == (4 * 2 * 8 * 5 * 16, 2 * 4 * 2 * 8 * 5 * 16)


def test_pooling_normalization_and_elementwise() -> None:
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2])
    assert node_cost(pool, [t(1, 8, 9, 9)], [t(1, 8, 4, 4)]).flops == 8 * 16 * 9
    gap = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    assert node_cost(gap, [t(1, 8, 7, 7)], [t(1, 8, 1, 1)]).flops == 8 * 49
    bn = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])
    assert node_cost(bn, [t(1, 8, 7, 7)], [t(1, 8, 7, 7)]).flops == 2 * 8 * 49
    lrn = helper.make_node("LRN", ["x"], ["y"], size=5)
    assert node_cost(lrn, [t(1, 8, 7, 7)], [t(1, 8, 7, 7)]).flops == (2 * 5 + 3) * 8 * 49
    softmax = helper.make_node("Softmax", ["x"], ["y"])
    assert node_cost(softmax, [t(1, 1000)], [t(1, 1000)]).flops == 3000
    relu = helper.make_node("Relu", ["x"], ["y"])
    assert node_cost(relu, [t(1, 8, 7, 7)], [t(1, 8, 7, 7)]).flops == 8 * 49
    add = helper.make_node("Add", ["x", "b"], ["y"])
    assert node_cost(add, [t(1, 8, 7, 7), t(8, 1, 1)], [t(1, 8, 7, 7)]).flops == 8 * 49
    summed = helper.make_node("Sum", ["a", "b", "c"], ["y"])
    assert node_cost(summed, [t(4), t(4), t(4)], [t(4)]).flops == 8
    for op in ("Concat", "Reshape", "Transpose", "Dropout", "Flatten"):
        cost = node_cost(helper.make_node(op, ["x"], ["y"]), [t(2, 3)], [t(2, 3)])
        assert cost.counted and cost.flops == 0 and cost.macs == 0


def test_unknown_operators_are_reported_not_guessed() -> None:
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["y"])
    assert not node_cost(node, [t(1, 10, 4), t(1, 1, 10)], [t(3, 3)]).counted
    custom = helper.make_node("Fancy", ["x"], ["y"], domain="com.example")
    assert not node_cost(custom, [t(2)], [t(2)]).counted


def test_every_counted_family_is_documented() -> None:
    for family in ("Conv", "ConvTranspose", "Gemm", "BatchNormalization", "LRN"):
        assert family in FLOP_RULES
    assert any("Concat" in key for key in FLOP_RULES)
    assert any("Softmax" in key for key in FLOP_RULES)


# Published multiply-accumulates of the convolutions and fully connected layers at 224x224.
# - ResNet-50: 4.09 GMAC, torchvision's model table (ResNet50_Weights.IMAGENET1K_V1,
#   "GFLOPS" 4.09, which counts multiply-adds) and ptflops' README (4.09 GMac).
# - VGG-19: 19.6 GMAC, He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
#   Fig. 3 caption ("VGG-19 model (19.6 billion FLOPs)", FLOPs meaning multiply-adds).
# - DenseNet-121: 2.87 GMac, ptflops' README table (torchvision lists 2.83).
# - SqueezeNet 1.1: 0.35 GMAC, torchvision's model table (SqueezeNet1_1_Weights, 0.35).
PUBLISHED_GMACS = {
    "resnet50": 4.1,
    "vgg19": 19.6,
    "densenet121": 2.87,
    "squeezenet": 0.35,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_GMACS))
def test_macs_match_published_figures(name: str) -> None:
    analysis = analyse_model(light_path(name))
    gmacs = analysis.total_macs / 1e9
    assert gmacs == pytest.approx(PUBLISHED_GMACS[name], rel=0.05)
    # Element-wise work (BatchNormalization, Relu, pooling, ...) comes on top of 2 x MACs.
    assert analysis.total_flops > 2 * analysis.total_macs


def test_placeholder_weights_are_parameters_not_compute() -> None:
    raw = analyse_model(light_path("bvlc_alexnet"))
    model = onnx.load(light_path("bvlc_alexnet"))
    placeholder_bytes = 0
    shapes = {init.name: list(onnx.numpy_helper.to_array(init)) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape":
            count = 1
            for dim in shapes[node.input[0]]:
                count *= int(dim)
            placeholder_bytes += 4 * count
    # AlexNet's only other constant is the Reshape target shape (2 int64 values).
    assert raw.params_bytes == placeholder_bytes + 16
    assert sum(block.op_counts.get("ConstantOfShape", 0) for block in raw.blocks) == 0
