"""onnxruntime sessions for the partitions and cascade stages this agent hosts.

A loaded partition is a chain of steps. Without exit heads it is one step: the partition's
artifact in one session. With exit heads, the partition is cut (with `onnx.utils.
Extractor`) after every block that has a head, so that a confident head ends the inference
without computing the rest; each step is followed by its head. Blocks are named after
their output tensor (the registry's convention), so a head after block B takes tensor B.
A head's single input is fed by position: its own input name need not match.

Loading is synchronous (run it in a thread): sessions are built, their costs analysed
(GFLOP per step, for `--emulate-gflops`) and warmed up with one run on zeros.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx.utils import Extractor

from api.wire import CascadeStageSpec, PartitionSpec
from models_registry.exits import confidence
from models_registry.runtime import make_session

log = logging.getLogger(__name__)

# onnxruntime's type strings -> numpy dtypes (the ones models exchange).
ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(int16)": "int16", "tensor(int32)": "int32",
    "tensor(int64)": "int64", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}  # fmt: skip


class InputError(ValueError):
    """The request's tensors do not fit the partition (dtype, shape or names)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | None, ...]  # None: a dynamic dimension

    def check(self, array: np.ndarray) -> None:
        if array.dtype.name != self.dtype:
            raise InputError(
                f"input {self.name!r}: dtype {array.dtype.name}, expected {self.dtype}"
            )
        if len(array.shape) != len(self.shape) or any(
            want is not None and got != want
            for got, want in zip(array.shape, self.shape, strict=True)
        ):
            want_text = ",".join("?" if d is None else str(d) for d in self.shape)
            raise InputError(
                f"input {self.name!r}: shape {list(array.shape)}, expected [{want_text}]"
            )


def _specs(args: list[Any]) -> list[TensorSpec]:
    out = []
    for arg in args:
        dtype = ORT_DTYPES.get(arg.type)
        if dtype is None:
            raise ValueError(f"tensor {arg.name!r} has unsupported type {arg.type}")
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
        out.append(TensorSpec(arg.name, dtype, shape))
    return out


def _zeros(spec: TensorSpec) -> np.ndarray:
    return np.zeros([1 if d is None else d for d in spec.shape], dtype=spec.dtype)


def _gflops(model: onnx.ModelProto) -> float | None:
    """The registry's FLOP count (the same the solver is given), or None if it cannot."""
    try:
        from models_registry.blocks import analyse_model

        return float(analyse_model(model).total_gflops)
    except Exception:  # any model the registry cannot analyse still serves
        return None


@dataclass
class ExitStep:
    after: str
    session: ort.InferenceSession
    input_name: str
    output_name: str
    threshold: float
    gflops: float


@dataclass
class Step:
    session: ort.InferenceSession
    inputs: list[TensorSpec]
    outputs: list[str]
    gflops: float
    exit: ExitStep | None = None


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    exit_taken: str | None  # the block whose head answered, or None
    real_s: float
    gflops: float  # the work actually done (steps not run do not count)
    # The last exit head evaluated and not confident: (block, its output name, logits).
    # What a local fallback answers when the route beyond this partition is broken.
    held: tuple[str, str, np.ndarray] | None = None


@dataclass
class Loaded:
    """A partition or cascade stage, ready to serve."""

    key: str
    kind: str  # "partition" | "stage"
    spec: PartitionSpec | CascadeStageSpec
    steps: list[Step]
    inputs: list[TensorSpec]
    gflops: float
    warmup_ms: float
    loaded_at: float = field(default_factory=time.time)

    @property
    def deployment(self) -> str:
        return self.spec.deployment

    @property
    def token(self) -> str:
        return self.spec.data_plane_token

    def bind(self, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds for the first step: by name, or an unnamed single tensor (the caller's
        `.npy`) for a single-input model. Checks dtype and shape before anything runs."""
        if set(tensors) == {""} and len(self.inputs) == 1:
            tensors = {self.inputs[0].name: tensors[""]}
        feeds: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            if spec.name not in tensors:
                raise InputError(
                    f"missing input {spec.name!r} (got {', '.join(map(repr, tensors)) or 'none'})"
                )
            spec.check(tensors[spec.name])
            feeds[spec.name] = tensors[spec.name]
        return feeds

    def run(self, feeds: dict[str, np.ndarray], use_exits: bool = True) -> RunResult:
        """Run the steps in order; a confident exit head ends the run."""
        env = dict(feeds)
        started = time.perf_counter()
        done = 0.0
        outputs: dict[str, np.ndarray] = {}
        held: tuple[str, str, np.ndarray] | None = None
        for step in self.steps:
            if step.outputs:  # (a head-only step, when a partition could not be cut, has none)
                needed = {spec.name: env[spec.name] for spec in step.inputs}
                values = step.session.run(step.outputs, needed)
                outputs = dict(zip(step.outputs, values, strict=True))
                env.update(outputs)
                done += step.gflops
            head = step.exit
            if head is not None and use_exits:
                tensor = env[head.after]
                (logits,) = head.session.run([head.output_name], {head.input_name: tensor})
                done += head.gflops
                if float(confidence(logits).min()) >= head.threshold:
                    return RunResult(
                        {head.output_name: logits}, head.after, time.perf_counter() - started, done
                    )
                held = (head.after, head.output_name, logits)
        return RunResult(outputs, None, time.perf_counter() - started, done, held)


def _fallback_gflops(session: ort.InferenceSession, inputs: list[TensorSpec], rate: float) -> float:
    # A model the registry cannot analyse: estimate its work from a timed run at the
    # machine's measured rate (so emulation still stretches it in proportion).
    feeds = {spec.name: _zeros(spec) for spec in inputs}
    started = time.perf_counter()
    session.run(None, feeds)
    return (time.perf_counter() - started) * rate


def _make_step(
    model: onnx.ModelProto, threads: int, rate: float, outputs: list[str] | None = None
) -> Step:
    session = make_session(model, threads)
    inputs = _specs(list(session.get_inputs()))
    names = outputs or [o.name for o in session.get_outputs()]
    gflops = _gflops(model)
    if gflops is None:
        gflops = _fallback_gflops(session, inputs, rate)
    return Step(session=session, inputs=inputs, outputs=names, gflops=gflops)


def _split(model: onnx.ModelProto, cuts: list[str]) -> list[onnx.ModelProto]:
    """The partition cut after each tensor in `cuts` (in block order)."""
    extractor = Extractor(model)
    graph_inputs = [
        i.name
        for i in model.graph.input
        if i.name not in {init.name for init in model.graph.initializer}
    ]
    outputs = [o.name for o in model.graph.output]
    pieces = []
    current = graph_inputs
    for tensor in cuts:
        pieces.append(extractor.extract_model(current, [tensor]))
        current = [tensor]
    pieces.append(extractor.extract_model(current, outputs))
    return pieces


def _exit_step(data: bytes, after: str, threshold: float, threads: int, rate: float) -> ExitStep:
    head = onnx.load_from_string(data)
    session = make_session(head, threads)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"exit head after {after!r} must have one input, has {len(inputs)}")
    gflops = _gflops(head)
    if gflops is None:
        gflops = _fallback_gflops(session, _specs(list(inputs)), rate)
    return ExitStep(
        after=after,
        session=session,
        input_name=inputs[0].name,
        output_name=session.get_outputs()[0].name,
        threshold=threshold,
        gflops=gflops,
    )


def load_partition(
    spec: PartitionSpec, data: bytes, heads: dict[str, bytes], threads: int, rate: float
) -> Loaded:
    """Sessions for a partition (and its exit heads, by `after`), warmed up."""
    model = onnx.load_from_string(data)
    exits = [e for e in spec.exits if e.after in heads]
    steps: list[Step] = []
    if exits:
        try:
            pieces = _split(model, [e.after for e in exits])
        except Exception as exc:
            # Cannot cut here: run the whole partition, with the exit tensors as extra
            # outputs, and evaluate the heads after it (same answers, less saving).
            log.warning(
                "%s: cannot cut at exits (%s); exits run after the partition", spec.key, exc
            )
            pieces = []
        if pieces:
            for piece, head in zip(pieces, [*exits, None], strict=True):
                step = _make_step(piece, threads, rate)
                if head is not None:
                    step.exit = _exit_step(
                        heads[head.after], head.after, head.threshold, threads, rate
                    )
                steps.append(step)
        else:
            for e in exits:
                if e.after not in {o.name for o in model.graph.output}:
                    model.graph.output.append(onnx.ValueInfoProto(name=e.after))
            step = _make_step(model, threads, rate)
            steps.append(step)
            # Every head runs after the whole partition, in block order.
            for e in exits:
                extra = Step(step.session, [], [], 0.0)
                extra.exit = _exit_step(heads[e.after], e.after, e.threshold, threads, rate)
                steps.append(extra)
    else:
        steps.append(_make_step(model, threads, rate))
    return _warm(spec.key, "partition", spec, steps)


def load_stage(spec: CascadeStageSpec, data: bytes, threads: int, rate: float) -> Loaded:
    step = _make_step(onnx.load_from_string(data), threads, rate)
    return _warm(spec.key, "stage", spec, [step])


def _warm(key: str, kind: str, spec: PartitionSpec | CascadeStageSpec, steps: list[Step]) -> Loaded:
    inputs = steps[0].inputs
    loaded = Loaded(
        key=key,
        kind=kind,
        spec=spec,
        steps=steps,
        inputs=inputs,
        gflops=sum(s.gflops + (s.exit.gflops if s.exit else 0.0) for s in steps),
        warmup_ms=0.0,
    )
    feeds = {s.name: _zeros(s) for s in inputs}
    started = time.perf_counter()
    loaded.run(feeds, use_exits=False)
    loaded.warmup_ms = (time.perf_counter() - started) * 1000.0
    return loaded
