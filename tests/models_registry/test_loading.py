from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from models_registry import ModelError, load_model, parse_input_shapes, read_model
from models_registry.loading import real_inputs

from .conftest import light_path


def dynamic_model() -> onnx.ModelProto:
    """x[N,3,8,8] -> Conv(4 filters) -> Relu -> GlobalAveragePool -> y."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["y"]),
        ],
        "dyn",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 1, 1])],
        initializer=[weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_not_onnx_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("these are my notes, not a model\n")
    with pytest.raises(ModelError, match="not an ONNX model"):
        load_model(path)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    data = light_path("squeezenet").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"truncated|checker|shape inference"):
        load_model(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        read_model(tmp_path / "absent.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        read_model(tmp_path / "empty.onnx")


def test_dynamic_input_needs_a_shape() -> None:
    with pytest.raises(ModelError, match=r"input 'x' has dynamic dimensions \[N,3,8,8\]"):
        load_model(dynamic_model())


def test_input_shape_fixes_dynamic_dimensions() -> None:
    model = load_model(dynamic_model(), {"x": (2, 3, 8, 8)})
    (value,) = real_inputs(model)
    assert [d.dim_value for d in value.type.tensor_type.shape.dim] == [2, 3, 8, 8]
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in out] == [2, 4, 1, 1]


def test_input_shape_errors() -> None:
    with pytest.raises(ModelError, match="model's inputs are x"):
        load_model(dynamic_model(), {"image": (1, 3, 8, 8)})
    with pytest.raises(ModelError, match="rank 4"):
        load_model(dynamic_model(), {"x": (1, 3, 8)})
    with pytest.raises(ModelError, match="contradicts"):
        load_model(dynamic_model(), {"x": (1, 4, 8, 8)})
    with pytest.raises(ModelError, match="NAME=1,3,224,224"):
        parse_input_shapes(["1,3,224,224"])
    with pytest.raises(ModelError, match="integers"):
        parse_input_shapes(["x=1,a"])
    assert parse_input_shapes(["gpu_0/data_0=1,3,224,224"]) == {"gpu_0/data_0": (1, 3, 224, 224)}


def test_old_opset_is_rejected() -> None:
    model = dynamic_model()
    model.opset_import[0].version = 8
    with pytest.raises(ModelError, match="opset 8"):
        load_model(model, {"x": (1, 3, 8, 8)})


def test_ir3_initializer_inputs_become_constants() -> None:
    raw = onnx.load(light_path("bvlc_alexnet"))
    assert raw.ir_version == 3 and len(raw.graph.input) == 18
    model = load_model(raw)
    assert [value.name for value in model.graph.input] == ["data_0"]
    assert model.ir_version >= 4
    assert len(raw.graph.input) == 18  # the caller's proto is untouched


def test_shape_nodes_are_folded_into_constants() -> None:
    # x -> Shape -> Reshape(x, shape): the Shape node becomes an initializer.
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Shape", ["r"], ["s"]),
            helper.make_node("Reshape", ["r", "s"], ["y"]),
        ],
        "shape",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 3])],
    )
    model = load_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert [node.op_type for node in model.graph.node] == ["Relu", "Reshape"]
    folded = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    assert folded["s"].tolist() == [1, 2, 3]


def test_models_from_a_newer_onnx_run_on_the_installed_onnxruntime() -> None:
    """onnx stamps its newest IR version; the registry lowers it to what onnxruntime loads."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from models_registry import analyse_model, quantize_int8
    from models_registry.loading import runtime_max_ir

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
        ],
        "newer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=onnx.IR_VERSION
    )
    analysis = analyse_model(model.SerializeToString())
    assert analysis.model.ir_version == min(onnx.IR_VERSION, runtime_max_ir())
    variant = quantize_int8(model.SerializeToString())
    assert variant.to_json()["int8_mb"] > 0
