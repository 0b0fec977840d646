"""Cut points on real DAGs, checked against the definition and the architectures."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from models_registry import ModelGraph, analyse_model, build_graph, find_cut_points, load_model
from models_registry.graph import node_inputs

from .conftest import light_path


def cuts_by_definition(mg: ModelGraph) -> list[str]:
    """Brute force: t (output of p) is a cut iff, with A = ancestors(p) + p and B = the
    other activation nodes, the only tensor produced in A (or a graph input) that B reads,
    or that is a model output, is t."""
    nodes = mg.model.graph.node
    act = set(mg.order)
    producer = {name: index for index in act for name in nodes[index].output if name}
    dag: nx.DiGraph = nx.DiGraph()
    dag.add_nodes_from(act)
    for index in act:
        for name in node_inputs(nodes[index]):
            if name in producer:
                dag.add_edge(producer[name], index)
    outputs = {info.name for info in mg.outputs}
    inputs = {info.name for info in mg.inputs}
    found = []
    for p in mg.order[:-1]:
        a = nx.ancestors(dag, p) | {p}
        b = act - a
        crossing = {
            name
            for index in b
            for name in node_inputs(nodes[index])
            if (name in producer and producer[name] in a) or name in inputs
        }
        crossing |= {name for name in outputs if name in producer and producer[name] in a}
        if len(crossing) == 1:
            (tensor,) = crossing
            if producer.get(tensor) == p and tensor not in outputs:
                found.append(tensor)
    return found


@pytest.mark.parametrize("name", ["squeezenet", "inception_v1", "shufflenet", "resnet50"])
def test_sweep_agrees_with_the_definition(name: str) -> None:
    mg = build_graph(load_model(light_path(name)))
    assert [cut.tensor for cut in find_cut_points(mg)] == cuts_by_definition(mg)


def test_resnet50_one_block_per_residual_block() -> None:
    analysis = analyse_model(light_path("resnet50"))
    sums = [block.op_counts.get("Sum", 0) for block in analysis.blocks]
    # stem, 16 residual blocks (3 + 4 + 6 + 3), head
    assert len(analysis.blocks) == 18
    assert sums == [0] + [1] * 16 + [0]
    assert analysis.blocks[0].op_counts["MaxPool"] == 1
    assert analysis.blocks[-1].op_counts["Gemm"] == 1


def test_densenet121_never_cuts_inside_a_dense_layer() -> None:
    mg = build_graph(load_model(light_path("densenet121")))
    nodes = mg.model.graph.node
    producers = Counter(nodes[mg.producer[cut.tensor]].op_type for cut in find_cut_points(mg))
    # This file's dense blocks append each layer's features to a running Concat, so the
    # running concatenation (58 = 6 + 12 + 24 + 16 layers) is the only tensor crossing
    # between two dense layers; inside a layer the block's input is still live for the
    # next Concat, so no cut can fall there.
    assert producers["Concat"] == 58
    analysis = analyse_model(light_path("densenet121"))
    with_concat = [b for b in analysis.blocks if "Concat" in b.op_counts]
    assert len(with_concat) == 58
    for block in with_concat:
        # a whole dense layer: BN-ReLU-Conv(1x1)-BN-ReLU-Conv(3x3), then the Concat
        assert block.op_counts["Concat"] == 1
        assert block.op_counts["Conv"] == 2
    transitions = [b for b in analysis.blocks if "AveragePool" in b.op_counts]
    assert len(transitions) == 3


@pytest.mark.parametrize(("name", "modules"), [("inception_v1", 9), ("inception_v2", 10)])
def test_inception_modules_collapse(name: str, modules: int) -> None:
    analysis = analyse_model(light_path(name))
    with_concat = [b for b in analysis.blocks if "Concat" in b.op_counts]
    assert len(with_concat) == modules
    for block in with_concat:
        assert block.op_counts["Concat"] == 1
        assert block.op_counts["Conv"] >= 4  # every branch of the module is inside


def test_shufflenet_channel_shuffles_stay_whole() -> None:
    analysis = analyse_model(light_path("shufflenet"))
    units = [b for b in analysis.blocks if "Transpose" in b.op_counts]
    assert len(units) == 16
    for block in units:
        assert block.op_counts["Transpose"] == 1
        # the shuffle's Reshape-Transpose-Reshape (plus the head's flattening Reshape)
        assert block.op_counts["Reshape"] - 2 in (0, 1)
        assert block.op_counts.get("Sum", 0) + block.op_counts.get("Concat", 0) == 1


def _residual_model(second_output: bool) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.full((2, 2, 1, 1), 0.5, np.float32), "w")
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Conv", ["a", "w"], ["b"]),
        helper.make_node("Conv", ["b", "w"], ["c"]),
        helper.make_node("Add", ["a", "c"], ["d"]),
        helper.make_node("Conv", ["d", "w"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])]
    if second_output:
        outputs.append(helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [1, 2, 4, 4]))
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 4, 4])],
        outputs,
        initializer=[w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_no_cut_inside_a_residual_block_or_past_a_side_output() -> None:
    mg = build_graph(load_model(_residual_model(second_output=False)))
    assert [cut.tensor for cut in find_cut_points(mg)] == ["a", "d"]
    mg = build_graph(load_model(_residual_model(second_output=True)))
    # "b" is a model output produced inside the residual block: a cut after "d" would
    # send two tensors forward, so only the cut before the block remains.
    assert [cut.tensor for cut in find_cut_points(mg)] == ["a"]


def test_weights_subgraphs_never_block_a_cut() -> None:
    # The weight is made by ConstantOfShape -> Unsqueeze, as in DenseNet's scale layers.
    shape = numpy_helper.from_array(np.array([2], np.int64), "shape")
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["s"],
            value=numpy_helper.from_array(np.array([2.0], np.float32)),
        ),
        helper.make_node("Unsqueeze", ["s", "axes"], ["s3"]),
        helper.make_node("Mul", ["a", "s3"], ["y"]),
    ]
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    graph = helper.make_graph(
        nodes,
        "scale",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 3, 3])],
        initializer=[shape, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    mg = build_graph(load_model(model))
    assert "s3" in mg.constants and "s" in mg.constants
    assert [cut.tensor for cut in find_cut_points(mg)] == ["a"]
    assert mg.info("s3") is not None and mg.info("s3").shape == (2, 1, 1)  # type: ignore[union-attr]
