"""Verification: the chain of partitions computes what the whole model computes.

On random inputs (see `runtime.random_inputs`), each partition is fed, by tensor name,
what the previous ones produced; the chain's final outputs are compared with the whole
model's. For each output, ``max_abs = max |chain - whole|`` and
``max_rel = max_abs / max(max |whole|, 1e-12)``: the largest error relative to the
output's scale, which stays meaningful where single elements are near zero. The chain
passes when every output's ``max_rel`` is at most ``rtol`` (1e-5 by default, for fp32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from models_registry.errors import ModelError
from models_registry.loading import TensorInfo
from models_registry.runtime import (
    Feeds,
    graph_inputs,
    graph_outputs,
    make_session,
    random_inputs,
    run,
)

DEFAULT_RTOL = 1e-5


@dataclass(frozen=True)
class OutputDiff:
    name: str
    max_abs: float
    max_rel: float


@dataclass(frozen=True)
class VerifyReport:
    outputs: tuple[OutputDiff, ...]
    rtol: float
    trials: int

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    @property
    def passed(self) -> bool:
        return all(o.max_rel <= self.rtol for o in self.outputs)

    def to_json(self) -> dict[str, object]:
        return {
            "passed": self.passed,
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "rtol": self.rtol,
            "trials": self.trials,
            "outputs": [
                {"name": o.name, "max_abs": o.max_abs, "max_rel": o.max_rel} for o in self.outputs
            ],
        }


def difference(chain: np.ndarray, whole: np.ndarray) -> tuple[float, float]:
    """(max_abs, max_rel) as defined in the module docstring."""
    if chain.shape != whole.shape:
        raise ModelError(f"output shapes differ: chain {chain.shape}, whole model {whole.shape}")
    a = chain.astype(np.float64)
    b = whole.astype(np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        same = bool(np.array_equal(a, b, equal_nan=True))
        return (0.0, 0.0) if same else (float("inf"), float("inf"))
    max_abs = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return max_abs, max_abs / max(scale, 1e-12)


def run_chain(
    parts: Sequence[onnx.ModelProto | bytes], feeds: Mapping[str, np.ndarray], threads: int = 0
) -> Feeds:
    """Run partitions in order, chaining tensors by name; every tensor produced."""
    env: Feeds = dict(feeds)
    for k, part in enumerate(parts):
        session = make_session(part, threads)
        missing = [v.name for v in session.get_inputs() if v.name not in env]
        if missing:
            raise ModelError(f"part {k} needs {', '.join(missing)}, which no earlier part makes")
        env.update(run(session, env))
    return env


def verify_chain(
    whole: onnx.ModelProto | bytes,
    parts: Sequence[onnx.ModelProto | bytes],
    *,
    inputs: Sequence[TensorInfo] | None = None,
    trials: int = 1,
    seed: int = 0,
    rtol: float = DEFAULT_RTOL,
    threads: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> VerifyReport:
    """Compare the chain of ``parts`` with ``whole`` on ``trials`` random inputs.

    ``inputs`` gives the input shapes; by default the first part's inputs are used (a
    partition's shapes are always static).
    """
    if not parts:
        raise ModelError("no partitions to verify")
    if inputs is None:
        first = parts[0]
        first_model = first if isinstance(first, onnx.ModelProto) else _parse(first)
        inputs = graph_inputs(first_model)
    whole_session = make_session(whole, threads)
    whole_names = [value.name for value in whole_session.get_outputs()]
    part_sessions = [make_session(part, threads) for part in parts]
    last_model = parts[-1] if isinstance(parts[-1], onnx.ModelProto) else _parse(parts[-1])
    if sorted(graph_outputs(last_model)) != sorted(whole_names):
        raise ModelError(
            f"the last part's outputs {graph_outputs(last_model)} are not the model's "
            f"outputs {whole_names}"
        )
    worst: dict[str, tuple[float, float]] = {name: (0.0, 0.0) for name in whole_names}
    for trial in range(trials):
        feeds = random_inputs(inputs, seed + trial)
        if on_step:
            on_step(f"whole model, trial {trial + 1}")
        expected = run(whole_session, feeds)
        env: Feeds = dict(feeds)
        for k, session in enumerate(part_sessions):
            if on_step:
                on_step(f"part {k}, trial {trial + 1}")
            missing = [v.name for v in session.get_inputs() if v.name not in env]
            if missing:
                raise ModelError(
                    f"part {k} needs {', '.join(missing)}, which no earlier part makes"
                )
            env.update(run(session, env))
        for name in whole_names:
            abs_diff, rel_diff = difference(env[name], expected[name])
            old = worst[name]
            worst[name] = (max(old[0], abs_diff), max(old[1], rel_diff))
    return VerifyReport(
        outputs=tuple(OutputDiff(name, *worst[name]) for name in whole_names),
        rtol=rtol,
        trials=trials,
    )


def _parse(data: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    return model
