"""The model registry's jobs, run in the control plane's process pool: analysing an
uploaded ONNX file, extracting partitions, quantizing, checking an exit head.

Every function here is top-level and takes and returns plain data (dicts, lists, paths
as strings), so that it pickles into a spawned worker process. The registry is imported
inside each job: loading onnx and onnxruntime takes seconds the server's start need not pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models_registry.errors import ModelError
from orchestrator.artifacts import Artifacts


def analyse_file(path: str, input_shapes: dict[str, list[int]] | None) -> dict[str, Any]:
    """The registry's analysis of an ONNX file (raises ModelError for anything else)."""
    from models_registry.blocks import analyse_model

    analysis = analyse_model(Path(path), input_shapes or None)
    return analysis.to_json()


def extract_ranges(
    model_path: str,
    input_shapes: dict[str, list[int]] | None,
    ranges: list[tuple[int, int]],
    store_root: str,
) -> list[dict[str, Any]]:
    """Partitions for block ranges (inclusive indices), written into the artifact store.

    Returns, per range, its sha256, size and the partition's input and output names.
    """
    from models_registry.blocks import analyse_model
    from models_registry.partition import extract_partition

    store = Artifacts(Path(store_root))
    analysis = analyse_model(Path(model_path), input_shapes or None)
    out: list[dict[str, Any]] = []
    for first, last in ranges:
        part = extract_partition(analysis, first, last)
        sha, size = store.put_bytes(part.to_bytes())
        out.append(
            {
                "first": first,
                "last": last,
                "sha256": sha,
                "size": size,
                "inputs": [info.name for info in part.inputs],
                "outputs": [info.name for info in part.outputs],
            }
        )
    return out


class CalibrationDataError(ModelError):
    """Calibration inputs that do not fit the model, found before anything is quantized:
    the request's `data` is at fault, not the model."""


def _samples(
    model_path: str, input_shapes: dict[str, list[int]] | None, data_path: str
) -> list[Any]:
    import numpy as np

    from models_registry.blocks import analyse_model
    from models_registry.exits import load_samples

    first = analyse_model(Path(model_path), input_shapes or None).inputs[0]
    try:
        samples = load_samples([data_path], first)
    except ModelError as exc:
        raise CalibrationDataError(str(exc)) from None
    if not all(np.isfinite(s).all() for s in samples if np.issubdtype(s.dtype, np.floating)):
        # A NaN or an infinity would fix the activations' ranges at nonsense.
        raise CalibrationDataError("the calibration data holds NaN or infinite values")
    return samples


def quantize_to_store(
    model_path: str,
    input_shapes: dict[str, list[int]] | None,
    store_root: str,
    data_path: str | None = None,
) -> dict[str, Any]:
    """An int8 variant through the registry, stored, analysed and measured: static
    quantization when calibration data (a .npy or .npz file) is given, dynamic without.
    Data that does not fit raises CalibrationDataError before any quantizing."""
    from models_registry.blocks import analyse_model
    from models_registry.quantize import quantize_int8

    samples = _samples(model_path, input_shapes, data_path) if data_path else None
    variant = quantize_int8(Path(model_path), input_shapes or None, calibration=samples)
    sha, size = Artifacts(Path(store_root)).put_bytes(variant.data)
    analysis = analyse_model(variant.data, input_shapes or None)
    return {
        "sha256": sha,
        "size": size,
        "analysis": analysis.to_json(),
        "detail": variant.to_json(),
    }


def check_exit_head(
    model_path: str, input_shapes: dict[str, list[int]] | None, after: str, head_path: str
) -> dict[str, float]:
    """The registry's check that a head takes block `after`'s output (ModelError naming
    both shapes when it does not), and the head's cost."""
    from models_registry.blocks import analyse_model
    from models_registry.exits import attach_exit

    analysis = analyse_model(Path(model_path), input_shapes or None)
    head = attach_exit(analysis, after, Path(head_path))
    return {"gflops": head.gflops, "params_mb": head.params_mb}


def profile_file(
    model_path: str, input_shapes: dict[str, list[int]] | None, runs: int
) -> dict[str, float]:
    """Each block's median time on this host (the registry's `profile_blocks`)."""
    from models_registry.blocks import analyse_model
    from models_registry.profiling import profile_blocks

    analysis = analyse_model(Path(model_path), input_shapes or None)
    return {t.name: t.median_ms for t in profile_blocks(analysis, runs=runs)}
