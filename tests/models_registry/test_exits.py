from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from models_registry import (
    ModelError,
    TensorInfo,
    analyse_model,
    attach_exit,
    calibrate_cascade,
    calibrate_exits,
    confidence,
    load_samples,
    make_exit_head,
)
from models_registry.runtime import make_session, run

INPUT = TensorInfo("data_0", (1, 3, 224, 224), "float32")


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    path = tmp_path_factory.mktemp("calib") / "batch.npy"
    np.save(path, np.random.default_rng(7).standard_normal((6, 3, 224, 224)).astype(np.float32))
    return load_samples([path], INPUT)


def test_confidence_of_logits_and_probabilities() -> None:
    logits = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert confidence(logits) == pytest.approx([0.5, 1 / (1 + np.exp(-10.0))])
    probs = np.array([[0.2, 0.8], [0.5, 0.5]])
    assert confidence(probs) == pytest.approx([0.8, 0.5])


def test_exit_head_fits_and_costs(randomized: Callable[[str], onnx.ModelProto]) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    head = make_exit_head(analysis, "r9", num_classes=10)
    exit_head = attach_exit(analysis, "r9", head)
    channels = analysis.block("r9").outputs[0].shape[1]
    assert exit_head.params_mb == pytest.approx((10 * channels + 10) * 4 / 1e6)
    assert exit_head.gflops > 2 * 10 * channels / 1e9
    entry = exit_head.to_scenario(0.25)
    assert entry["after"] == "r9" and entry["prob"] == 0.25
    # the head runs on the block's real output
    env = {"data_0": np.zeros((1, 3, 224, 224), np.float32)}
    from models_registry import extract_partition

    env.update(run(make_session(extract_partition(analysis, 0, 2).model, 1), env))
    (logits,) = run(make_session(exit_head.model, 1), env).values()
    assert logits.shape == (1, 10)


def test_misfitting_head_names_both_shapes(randomized: Callable[[str], onnx.ModelProto]) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    head = make_exit_head(analysis, "r4", num_classes=10)  # made for another block
    with pytest.raises(ModelError, match=r"\[1,16,55,55\] float32.*'r9' outputs \[1,128,55,55\]"):
        attach_exit(analysis, "r9", head)
    with pytest.raises(ModelError, match="last block"):
        make_exit_head(analysis, analysis.block_names[-1])


def test_calibration_probabilities(
    randomized: Callable[[str], onnx.ModelProto], samples: list[np.ndarray]
) -> None:
    analysis = analyse_model(randomized("squeezenet"))
    heads = [
        attach_exit(analysis, name, make_exit_head(analysis, name, num_classes=2, seed=1))
        for name in ("r9", "r32")
    ]
    always = calibrate_exits(analysis, heads, samples, threshold=0.0, threads=1)
    assert [(c.reached, c.fired, c.prob) for c in always] == [(6, 6, 1.0), (0, 0, 0.0)]
    never = calibrate_exits(analysis, heads, samples, threshold=1.0, threads=1)
    assert [(c.reached, c.fired) for c in never] == [(6, 0), (6, 0)]
    # At a middle threshold each exit's prob is fired / reached, conditional on reaching it.
    middle = calibrate_exits(analysis, heads, samples, threshold=0.75, threads=1)
    assert middle[1].reached == 6 - middle[0].fired
    for result in middle:
        assert result.to_scenario()["prob"] == pytest.approx(result.prob, abs=1e-6)


def test_cascade_exit_probability(
    randomized: Callable[[str], onnx.ModelProto], samples: list[np.ndarray]
) -> None:
    small = randomized("squeezenet")
    assert calibrate_cascade(small, samples, threshold=0.0) == 1.0
    assert calibrate_cascade(small, samples, threshold=1.0) == 0.0
    session = make_session(small, 1)
    confident = [float(confidence(run(session, {"data_0": s})["softmaxout_1"])[0]) for s in samples]
    threshold = float(np.median(confident))
    expected = sum(c >= threshold for c in confident) / len(samples)
    assert calibrate_cascade(small, samples, threshold=threshold) == expected


def test_sample_files(tmp_path: Path) -> None:
    info = INPUT
    np.savez(
        tmp_path / "two.npz",
        a=np.zeros((2, 3, 224, 224), np.float32),
        b=np.ones((1, 3, 224, 224), np.float64),
    )
    loaded = load_samples([tmp_path / "two.npz"], info)
    assert len(loaded) == 3 and all(s.shape == (1, 3, 224, 224) for s in loaded)
    assert loaded[2].dtype == np.float32
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ModelError, match=r"shape \[2,3,32,32\].*needs \[1,3,224,224\]"):
        load_samples([tmp_path / "bad.npy"], info)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ModelError, match=r"\.npy or \.npz"):
        load_samples([tmp_path / "x.csv"], info)
