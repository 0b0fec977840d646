"""`continuum model ...`: inspect, split, verify, quantize, profile and calibrate models."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:  # the registry pulls in onnx: import it only when a command runs
    from models_registry import ModelAnalysis
    from models_registry.blocks import Granularity

model_app = typer.Typer(
    help="Inspect, split, verify, quantize, profile and calibrate ONNX models.",
    no_args_is_help=True,
)

out = Console()
err = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

InputShape = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        help="Static shape for an input with dynamic dimensions: NAME=1,3,224,224 (repeatable).",
    ),
]
Fine = Annotated[
    bool,
    typer.Option("--fine", help="Keep every cut point (default: blocks of whole layers)."),
]
Threads = Annotated[int, typer.Option("--threads", help="onnxruntime intra-op threads.")]


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a ModelError (or an OS error) into one `error:` line and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from models_registry import ModelError

        try:
            return func(*args, **kwargs)
        except (ModelError, OSError) as exc:
            message = str(exc).replace("\n", " ").strip() or type(exc).__name__
            print(f"error: {message}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _granularity(fine: bool) -> Granularity:
    return "fine" if fine else "layer"


def _analyse(file: Path, input_shape: list[str] | None, fine: bool = False) -> ModelAnalysis:
    from models_registry import analyse_model, parse_input_shapes

    shapes = parse_input_shapes(input_shape or [])
    return analyse_model(file, shapes, granularity=_granularity(fine))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=total, step="")

        def step(label: str) -> None:
            progress.update(task, advance=1, step=label)

        yield step


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@model_app.command()
@user_errors
def inspect(
    file: Path,
    input_shape: InputShape = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    fine: Fine = False,
    scenario_id: Annotated[
        str | None,
        typer.Option("--scenario-id", help="Print a scenario-v1 `models` entry with this id."),
    ] = None,
    accuracy: Annotated[
        float | None, typer.Option(help="Accuracy (0..1) you measured, for --scenario-id.")
    ] = None,
) -> None:
    """The block table: GFLOP, parameters and output size of every block."""
    analysis = _analyse(file, input_shape, fine)
    if scenario_id is not None:
        _print_json(analysis.to_scenario_model(scenario_id, accuracy=accuracy))
        return
    if json_out:
        _print_json(analysis.to_json())
        return
    table = Table(title=f"{file.name}: {len(analysis.blocks)} blocks")
    for column in ("#", "block (cut after)", "ops", "GFLOP", "params MB", "out MB"):
        table.add_column(column, justify="left" if column.startswith(("b", "o")) else "right")
    for block in analysis.blocks:
        ops = ", ".join(f"{op}x{n}" if n > 1 else op for op, n in block.op_counts.items())
        table.add_row(
            str(block.index),
            block.name,
            ops if len(ops) <= 48 else ops[:45] + "...",
            _fmt(block.gflops),
            _fmt(block.params_mb),
            _fmt(block.out_mb),
        )
    out.print(table)
    inputs = ", ".join(f"{i.name} {list(i.shape)} {i.dtype}" for i in analysis.inputs)
    out.print(
        f"inputs: {inputs} ({_fmt(analysis.input_mb)} MB)   total: "
        f"{_fmt(analysis.total_gflops)} GFLOP ({_fmt(analysis.total_macs / 1e9)} GMAC), "
        f"{_fmt(analysis.params_mb)} MB of parameters"
    )
    if analysis.uncounted_ops:
        shown = ", ".join(f"{op} x{n}" for op, n in sorted(analysis.uncounted_ops.items()))
        out.print(f"[yellow]operators with no FLOP rule (counted as 0): {shown}[/yellow]")


@model_app.command()
@user_errors
def split(
    file: Path,
    after: Annotated[str, typer.Option(help="Blocks to cut after, comma-separated.")],
    out_dir: Annotated[Path, typer.Option("--out", help="New directory for the parts.")],
    input_shape: InputShape = None,
    fine: Fine = False,
) -> None:
    """One ONNX file per partition, and DIR/manifest.json."""
    from models_registry import split_model, write_partitions

    names = [name.strip() for name in after.split(",") if name.strip()]
    analysis = _analyse(file, input_shape, fine)
    parts = split_model(analysis, names)
    manifest = write_partitions(parts, out_dir)
    table = Table(title=f"{len(parts)} parts in {out_dir}")
    for column in ("file", "first", "last", "inputs", "outputs", "MB"):
        table.add_column(column)
    for entry in manifest["parts"]:
        size = (out_dir / entry["file"]).stat().st_size / 1e6
        table.add_row(
            entry["file"],
            entry["first"],
            entry["last"],
            ", ".join(i["name"] for i in entry["inputs"]),
            ", ".join(o["name"] for o in entry["outputs"]),
            _fmt(size),
        )
    out.print(table)


@model_app.command()
@user_errors
def verify(
    file: Path,
    directory: Path,
    input_shape: InputShape = None,
    trials: Annotated[int, typer.Option(min=1, help="Random inputs to try.")] = 1,
    seed: int = 0,
    rtol: Annotated[float, typer.Option(help="Largest relative difference allowed.")] = 1e-5,
    threads: Threads = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Run the chain of parts and the whole model; exit 1 when they differ."""
    from models_registry import analyse_model, parse_input_shapes, read_partitions, verify_chain

    parts = read_partitions(directory)
    shapes = parse_input_shapes(input_shape or [])
    if not shapes:
        shapes = {info.name: info.shape for info in parts[0].inputs}
    analysis = analyse_model(file, shapes)
    steps = trials * (len(parts) + 1)
    with _progress("verifying", steps) as step:
        report = verify_chain(
            analysis.model,
            [part.data for part in parts],
            inputs=analysis.inputs,
            trials=trials,
            seed=seed,
            rtol=rtol,
            threads=threads,
            on_step=step,
        )
    if json_out:
        _print_json(report.to_json())
    else:
        table = Table(title=f"{len(parts)} parts against {file.name}")
        for column in ("output", "max abs diff", "max rel diff"):
            table.add_column(column)
        for diff in report.outputs:
            table.add_row(diff.name, f"{diff.max_abs:.3g}", f"{diff.max_rel:.3g}")
        out.print(table)
        verdict = "[green]match[/green]" if report.passed else "[red]DIFFER[/red]"
        out.print(f"{verdict} (relative tolerance {rtol:g}, {trials} random input(s))")
    if not report.passed:
        raise typer.Exit(1)


@model_app.command()
@user_errors
def quantize(
    file: Path,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the int8 model.")],
    input_shape: InputShape = None,
    runs: Annotated[int, typer.Option(min=1)] = 10,
    warmup: Annotated[int, typer.Option(min=0)] = 2,
    threads: Threads = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An int8 variant, with its size, latency and deviation from fp32."""
    from models_registry import parse_input_shapes, quantize_int8

    with err.status("quantizing and timing"):
        variant = quantize_int8(
            file,
            parse_input_shapes(input_shape or []),
            runs=runs,
            warmup=warmup,
            threads=threads,
        )
    _write_atomic(out_file, variant.data)
    record = {"file": str(out_file), **variant.to_json()}
    if json_out:
        _print_json(record)
        return
    table = Table(title=f"int8 variant of {file.name} -> {out_file}")
    table.add_column("")
    table.add_column("fp32", justify="right")
    table.add_column("int8", justify="right")
    table.add_row("size MB", _fmt(variant.fp32_bytes / 1e6), _fmt(variant.int8_bytes / 1e6))
    table.add_row("median latency ms", _fmt(variant.fp32_latency_ms), _fmt(variant.int8_latency_ms))
    out.print(table)
    out.print(
        f"output deviation from fp32: max abs {variant.max_abs:.3g}, "
        f"max rel {variant.max_rel:.3g} (accuracy is yours to measure)"
    )


@model_app.command()
@user_errors
def profile(
    file: Path,
    input_shape: InputShape = None,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per block.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 2,
    threads: Threads = 1,
    fine: Fine = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per-block latency on this host against the FLOP-proportional estimate."""
    from models_registry import compare, profile_blocks

    analysis = _analyse(file, input_shape, fine)
    with _progress("profiling", len(analysis.blocks)) as step:
        timings = profile_blocks(analysis, runs=runs, warmup=warmup, threads=threads, on_block=step)
    comparison = compare(timings)
    if json_out:
        _print_json(
            {
                "blocks": [
                    {"name": t.name, "gflops": t.gflops, "median_ms": t.median_ms, "est_ms": e}
                    for t, e in zip(timings, comparison.estimated_ms, strict=True)
                ],
                # The body of `POST /v1/models/{id}/profile` (`jq '{block_ms}'`).
                "block_ms": {t.name: t.median_ms for t in timings},
                **comparison.to_json(),
            }
        )
        return
    table = Table(title=f"{file.name} on this host ({threads} thread(s), median of {runs})")
    for column in ("block", "GFLOP", "measured ms", "estimated ms", "measured/est"):
        table.add_column(column, justify="left" if column == "block" else "right")
    for t, est, ratio in zip(timings, comparison.estimated_ms, comparison.ratios, strict=True):
        table.add_row(t.name, _fmt(t.gflops), _fmt(t.median_ms), _fmt(est), f"{ratio:.2f}")
    out.print(table)
    out.print(
        f"fitted throughput {comparison.host_gflops_per_s:.3g} GFLOP/s; Pearson r "
        f"{comparison.pearson_r:.3f}; mean |error| {comparison.mean_abs_pct_error:.0f}%"
    )


@model_app.command("randomize")
@user_errors
def randomize_cmd(
    file: Path,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the model.")],
    seed: int = 0,
) -> None:
    """Replace placeholder weights (ConstantOfShape, Constant) by random ones."""
    from models_registry import randomize

    model = randomize(file, seed)
    _write_atomic(out_file, model.SerializeToString())
    out.print(f"wrote {out_file} ({len(model.graph.initializer)} initializers, seed {seed})")


@model_app.command("exit-head")
@user_errors
def exit_head(
    file: Path,
    after: Annotated[str, typer.Option(help="Block whose output the head reads.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the head.")],
    classes: Annotated[int, typer.Option(min=1)] = 1000,
    seed: int = 0,
    input_shape: InputShape = None,
) -> None:
    """Make a simple exit head (pool, flatten, linear; random weights) for a block."""
    from models_registry import attach_exit, make_exit_head

    analysis = _analyse(file, input_shape)
    head = make_exit_head(analysis, after, classes, seed)
    checked = attach_exit(analysis, after, head)
    _write_atomic(out_file, head.SerializeToString())
    out.print(f"wrote {out_file}: {_fmt(checked.gflops)} GFLOP, {_fmt(checked.params_mb)} MB")


def _pairs(specs: list[str], what: str) -> list[tuple[str, str]]:
    from models_registry import ModelError

    pairs = []
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key or not value:
            raise ModelError(f"{what} {spec!r} is not of the form BLOCK=VALUE")
        pairs.append((key, value))
    return pairs


def _probability(text: str, what: str) -> float:
    from models_registry import ModelError

    try:
        value = float(text)
    except ValueError:
        raise ModelError(f"{what}: {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"{what}: {value} is outside 0..1")
    return value


@model_app.command()
@user_errors
def calibrate(
    file: Path,
    exit_spec: Annotated[list[str], typer.Option("--exit", help="BLOCK=HEAD.onnx (repeatable).")],
    data: Annotated[
        list[Path] | None, typer.Option(help="Calibration inputs (.npy batch or .npz).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Max-softmax confidence to exit.")] = 0.8,
    prob: Annotated[
        list[str] | None, typer.Option(help="BLOCK=P: state an exit's probability instead.")
    ] = None,
    model_id: Annotated[str, typer.Option("--id", help="Scenario model id.")] = "model",
    accuracy: Annotated[float | None, typer.Option(help="Accuracy you measured.")] = None,
    input_shape: InputShape = None,
    threads: Threads = 1,
) -> None:
    """Exit probabilities from calibration data; prints a scenario-v1 model entry."""
    from models_registry import ModelError, attach_exit, calibrate_exits, load_samples

    analysis = _analyse(file, input_shape)
    heads = [
        attach_exit(analysis, block, Path(path)) for block, path in _pairs(exit_spec, "--exit")
    ]
    stated = {
        block: _probability(p, f"--prob {block}") for block, p in _pairs(prob or [], "--prob")
    }
    unknown = set(stated) - {head.after for head in heads}
    if unknown:
        raise ModelError(f"--prob names {', '.join(sorted(unknown))}, which has no --exit head")
    probs: dict[str, float] = dict(stated)
    to_measure = [head for head in heads if head.after not in stated]
    if to_measure:
        if not data:
            raise ModelError("give calibration inputs with --data, or state every --prob")
        if stated:
            raise ModelError(
                "calibrate every exit or state every probability; mixing them would make "
                "the conditional probabilities inconsistent"
            )
        samples = load_samples(data, analysis.inputs[0])
        with _progress("calibrating", len(samples)) as step:
            results = calibrate_exits(
                analysis,
                to_measure,
                samples,
                threshold,
                threads=threads,
                on_sample=lambda k: step(f"sample {k + 1}"),
            )
        probs.update({result.after: round(result.prob, 6) for result in results})
    exits = sorted(
        (head.to_scenario(probs[head.after]) for head in heads),
        key=lambda e: analysis.block_index(e["after"]),
    )
    _print_json(analysis.to_scenario_model(model_id, accuracy=accuracy, exits=exits))


@model_app.command()
@user_errors
def cascade(
    small: Path,
    big: Path,
    data: Annotated[
        list[Path] | None, typer.Option(help="Calibration inputs (.npy batch or .npz).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Max-softmax confidence to stop.")] = 0.8,
    exit_prob: Annotated[
        float | None, typer.Option(help="State the small model's exit probability instead.")
    ] = None,
    small_id: str = "small",
    big_id: str = "big",
    input_shape: InputShape = None,
    threads: Threads = 1,
) -> None:
    """A two-stage cascade (small model, then big): prints models and the app's cascade."""
    from models_registry import (
        ModelError,
        analyse_model,
        calibrate_cascade,
        load_samples,
        parse_input_shapes,
    )

    shapes = parse_input_shapes(input_shape or [])
    small_analysis = analyse_model(small, shapes)
    big_analysis = analyse_model(big, shapes)
    if exit_prob is None:
        if not data:
            raise ModelError("give calibration inputs with --data, or state --exit-prob")
        samples = load_samples(data, small_analysis.inputs[0])
        with err.status("calibrating the small model"):
            exit_prob = calibrate_cascade(small_analysis.model, samples, threshold, threads=threads)
    else:
        exit_prob = _probability(str(exit_prob), "--exit-prob")
    _print_json(
        {
            "models": [
                small_analysis.to_scenario_model(small_id),
                big_analysis.to_scenario_model(big_id),
            ],
            "cascade": [
                {"model": small_id, "exit_prob": round(exit_prob, 6)},
                {"model": big_id},
            ],
        }
    )
