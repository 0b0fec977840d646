from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from models_registry import randomize
from models_registry.runtime import graph_inputs, make_session, random_inputs, run

from .conftest import light_path


def test_placeholders_become_seeded_random_initializers() -> None:
    first = randomize(light_path("squeezenet"), seed=3)
    again = randomize(light_path("squeezenet"), seed=3)
    other = randomize(light_path("squeezenet"), seed=4)
    assert first.SerializeToString() == again.SerializeToString()
    assert first.SerializeToString() != other.SerializeToString()
    assert not [n for n in first.graph.node if n.op_type == "ConstantOfShape"]
    onnx.checker.check_model(first)
    weights = {i.name: numpy_helper.to_array(i) for i in first.graph.initializer}
    conv1 = weights["conv1_w_0"]
    assert conv1.shape == (64, 3, 3, 3) and conv1.dtype == np.float32
    # He scaling: standard deviation sqrt(2 / fan_in), fan_in = 3 * 3 * 3
    assert abs(float(conv1.std()) - np.sqrt(2 / 27)) < 0.03


def test_batchnorm_variances_positive_and_outputs_finite() -> None:
    model = randomize(light_path("resnet50"), seed=0)
    bn_nodes = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    by_name = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    variances = [by_name[n.input[4]] for n in bn_nodes]
    assert len(variances) == 53 and all(float(v.min()) > 0 for v in variances)
    session = make_session(model, threads=1)
    outputs = run(session, random_inputs(graph_inputs(model), seed=0))
    (probs,) = outputs.values()
    assert np.isfinite(probs).all() and probs.shape == (1, 1000)
