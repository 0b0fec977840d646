"""A model's accuracy measured on labelled data the user provides: top-1, the class with
the highest score of the model's first output against the label, over every sample.
The figure `min_accuracy` is compared with, measured rather than typed in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models_registry.blocks import ModelAnalysis
from models_registry.errors import ModelError
from models_registry.runtime import graph_outputs, make_session


def load_labels(path: Path, count: int) -> np.ndarray:
    """Integer class labels, one per sample, from a `.npy` file."""
    if path.suffix != ".npy" or not path.is_file():
        raise ModelError(f"{path}: labels must be an existing .npy file of integers")
    try:
        labels = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable numpy file ({exc})") from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ModelError(f"{path}: labels must be a 1-D array of integers (got {labels.dtype}"
                         f" of shape {list(labels.shape)})")  # fmt: skip
    if len(labels) != count:
        raise ModelError(f"{path}: {len(labels)} labels for {count} samples")
    return labels


def top1_accuracy(
    analysis: ModelAnalysis,
    samples: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    threads: int = 1,
    on_sample: Callable[[int], None] | None = None,
) -> float:
    """The fraction of samples whose top-scoring class is their label."""
    if not samples:
        raise ModelError("no labelled samples to measure accuracy on")
    session = make_session(analysis.model, threads)
    first = graph_outputs(analysis.model)[0]
    name = analysis.inputs[0].name
    right = 0
    for k, (sample, label) in enumerate(zip(samples, labels, strict=True)):
        (scores,) = session.run([first], {name: sample})
        right += int(np.argmax(np.asarray(scores).reshape(-1)) == int(label))
        if on_sample:
            on_sample(k)
    return right / len(samples)
