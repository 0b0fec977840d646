"""Split every light model at two cut points and verify the chain against the whole."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from models_registry import (
    ModelError,
    analyse_model,
    read_partitions,
    split_model,
    verify_chain,
    write_partitions,
)

from .conftest import LIGHT_MODELS, light_path


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_split_at_two_cut_points_and_verify(
    name: str, randomized: Callable[[str], onnx.ModelProto]
) -> None:
    model = randomized(name)
    analysis = analyse_model(model)
    candidates = analysis.block_names[:-1]
    after = random.Random(f"split-{name}").sample(candidates, 2)
    parts = split_model(analysis, after)
    assert len(parts) == 3
    first, second = sorted(analysis.block_index(n) for n in after)
    assert [p.last_index for p in parts] == [first, second, len(analysis.blocks) - 1]
    # Chaining is by name: each part reads exactly what the previous one writes.
    for before, part in itertools.pairwise(parts):
        assert [i.name for i in part.inputs] == [o.name for o in before.outputs]
        assert part.inputs == before.outputs
    # Each part carries only its own weights, and together exactly the model's.
    owned = [{init.name for init in p.model.graph.initializer} for p in parts]
    weight_bytes = [
        sum(analysis.blocks[i].params_bytes for i in range(p.first_index, p.last_index + 1))
        for p in parts
    ]
    for _names, part, expected in zip(owned, parts, weight_bytes, strict=True):
        onnx.checker.check_model(part.model)
        stored = sum(
            len(init.raw_data) or 4 * len(init.float_data) or 8 * len(init.int64_data)
            for init in part.model.graph.initializer
        )
        assert stored <= expected + 1024  # folded shape constants are the only extra
    assert not (owned[0] & owned[1]) and not (owned[1] & owned[2])
    report = verify_chain(model, [p.model for p in parts], threads=1)
    assert report.passed, report.to_json()
    assert report.max_rel <= 1e-5


def test_write_and_read_back(tmp_path: Path, randomized: Callable[[str], onnx.ModelProto]) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    parts = split_model(analysis, [analysis.block_names[5]])
    manifest = write_partitions(parts, tmp_path / "parts")
    on_disk = json.loads((tmp_path / "parts" / "manifest.json").read_text())
    assert on_disk == manifest
    assert [set(p) for p in on_disk["parts"]] == [
        {"file", "first", "last", "inputs", "outputs", "sha256"}
    ] * 2
    assert on_disk["parts"][0]["inputs"] == [
        {"name": "data_0", "shape": [1, 3, 224, 224], "dtype": "float32"}
    ]
    stored = read_partitions(tmp_path / "parts")
    report = verify_chain(analysis.model, [p.data for p in stored], threads=1)
    assert report.passed
    # A changed part is caught by its hash.
    (tmp_path / "parts" / "part1.onnx").write_bytes(stored[1].data + b"\0")
    with pytest.raises(ModelError, match="sha256 does not match"):
        read_partitions(tmp_path / "parts")


def test_bad_splits_write_nothing(
    tmp_path: Path, randomized: Callable[[str], onnx.ModelProto]
) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    with pytest.raises(ModelError, match="not a cut point"):
        split_model(analysis, ["r3"])
    with pytest.raises(ModelError, match="last block"):
        split_model(analysis, [analysis.block_names[-1]])
    with pytest.raises(ModelError, match="named twice"):
        split_model(analysis, ["r9", "r9"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    parts = split_model(analysis, ["r9"])
    with pytest.raises(ModelError, match="not an empty directory"):
        write_partitions(parts, tmp_path / "busy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_verify_detects_a_different_chain(randomized: Callable[[str], onnx.ModelProto]) -> None:
    from models_registry import randomize

    model = randomized("squeezenet")
    other = randomize(light_path("squeezenet"), seed=1)  # same architecture, other weights
    analysis = analyse_model(other)
    parts = split_model(analysis, ["r24"])
    report = verify_chain(model, [p.model for p in parts], threads=1)
    assert not report.passed
    assert report.max_rel > 1e-3 and report.max_abs > 0
