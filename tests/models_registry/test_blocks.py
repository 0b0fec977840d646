from __future__ import annotations

from collections.abc import Callable

import onnx
import pytest

from models_registry import ModelError, analyse_model

from .conftest import LIGHT_MODELS, light_path


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_block_list_is_a_scenario_model(name: str) -> None:
    analysis = analyse_model(light_path(name))
    entry = analysis.to_scenario_model(name)
    assert set(entry) == {"id", "input_mb", "layers"}  # no invented accuracy
    assert entry["input_mb"] == pytest.approx(1 * 3 * 224 * 224 * 4 / 1e6)
    names = [layer["name"] for layer in entry["layers"]]
    assert len(names) == len(set(names)) == len(analysis.blocks) >= 2
    for layer in entry["layers"]:
        assert set(layer) == {"name", "gflops", "params_mb", "out_mb"}
        assert layer["gflops"] > 0 and layer["out_mb"] > 0 and layer["params_mb"] >= 0
    assert sum(b.flops for b in analysis.blocks) == analysis.total_flops
    assert sum(b.params_bytes for b in analysis.blocks) == analysis.params_bytes
    assert analysis.blocks[-1].out_bytes == sum(o.nbytes for o in analysis.outputs)
    assert analysis.to_json()["blocks"] == entry["layers"]


def test_fine_granularity_keeps_every_cut_point() -> None:
    layer = analyse_model(light_path("resnet50"))
    fine = analyse_model(light_path("resnet50"), granularity="fine")
    assert len(fine.blocks) > len(layer.blocks)
    assert set(layer.block_names[:-1]) <= set(fine.block_names[:-1])
    assert fine.total_flops == layer.total_flops


def test_random_weights_do_not_change_the_analysis(
    randomized: Callable[[str], onnx.ModelProto],
) -> None:
    raw = analyse_model(light_path("inception_v1"))
    rand = analyse_model(randomized("inception_v1"))
    assert rand.to_json() == raw.to_json()


def test_scenario_entry_with_accuracy_and_exits() -> None:
    analysis = analyse_model(light_path("squeezenet"))
    first = analysis.block_names[0]
    exit_entry = {"after": first, "prob": 0.3, "gflops": 0.001, "params_mb": 0.1}
    entry = analysis.to_scenario_model("sq", accuracy=0.58, exits=[exit_entry])
    assert entry["accuracy"] == 0.58 and entry["exits"] == [exit_entry]
    with pytest.raises(ModelError, match=r"outside 0\.\.1"):
        analysis.to_scenario_model("sq", accuracy=58)
    last = analysis.block_names[-1]
    with pytest.raises(ModelError, match="not a block before the last"):
        analysis.to_scenario_model("sq", exits=[{**exit_entry, "after": last}])


def test_unknown_block_name_lists_the_cut_points() -> None:
    analysis = analyse_model(light_path("squeezenet"))
    with pytest.raises(ModelError, match=r"'nope' is not a cut point.*r2, r4"):
        analysis.block_index("nope")
