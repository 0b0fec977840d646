"""Top-1 accuracy on labelled data (models_registry/accuracy.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models_registry import ModelError, analyse_model, load_labels, top1_accuracy
from models_registry.runtime import make_session
from tests.onnx_models import small_cnn


def test_top1_counts_the_samples_whose_best_class_is_their_label() -> None:
    analysis = analyse_model(small_cnn())
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal((1, 3, 32, 32)).astype(np.float32) for _ in range(5)]
    session = make_session(analysis.model, 1)
    name = analysis.inputs[0].name
    best = [int(np.argmax(session.run(None, {name: s})[0])) for s in samples]
    labels = np.array(best[:3] + [b + 1 for b in best[3:]])
    assert top1_accuracy(analysis, samples, labels) == pytest.approx(3 / 5)
    with pytest.raises(ModelError, match="no labelled samples"):
        top1_accuracy(analysis, [], labels[:0])


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((2, 2), dtype=np.int64), "1-D array of integers"),
        (np.zeros(3, dtype=np.float32), "1-D array of integers"),
        (np.zeros(2, dtype=np.int64), "2 labels for 3 samples"),
    ],
)
def test_bad_labels_are_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "y.npy"
    np.save(path, array)
    with pytest.raises(ModelError, match=message):
        load_labels(path, 3)
    with pytest.raises(ModelError, match=r"existing \.npy"):
        load_labels(tmp_path / "y.txt", 3)
