"""`continuum model ...`: inspect, split, verify, quantize, profile and calibrate models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli import model_calibrate  # noqa: F401 (registers calibrate and cascade on model_app)
from cli.model_common import (
    Fine,
    InputShape,
    Threads,
    analyse_file,
    err,
    fmt,
    model_app,
    out,
    print_json,
    progress,
    user_errors,
    write_atomic,
)

__all__ = ["model_app"]


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
    analysis = analyse_file(file, input_shape, fine)
    if scenario_id is not None:
        print_json(analysis.to_scenario_model(scenario_id, accuracy=accuracy))
        return
    if json_out:
        print_json(analysis.to_json())
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
            fmt(block.gflops),
            fmt(block.params_mb),
            fmt(block.out_mb),
        )
    out.print(table)
    inputs = ", ".join(f"{i.name} {list(i.shape)} {i.dtype}" for i in analysis.inputs)
    out.print(
        f"inputs: {inputs} ({fmt(analysis.input_mb)} MB)   total: "
        f"{fmt(analysis.total_gflops)} GFLOP ({fmt(analysis.total_macs / 1e9)} GMAC), "
        f"{fmt(analysis.params_mb)} MB of parameters"
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
    analysis = analyse_file(file, input_shape, fine)
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
            fmt(size),
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
    with progress("verifying", steps) as step:
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
        print_json(report.to_json())
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
    data: Annotated[
        list[Path] | None,
        typer.Option(help="Calibration inputs (.npy batch or .npz): static quantization."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An int8 variant, with its size, latency and deviation from fp32."""
    from models_registry import analyse_model, load_samples, parse_input_shapes, quantize_int8

    shapes = parse_input_shapes(input_shape or [])
    samples = load_samples(data, analyse_model(file, shapes).inputs[0]) if data else None
    with err.status("quantizing and timing"):
        variant = quantize_int8(
            file, shapes, runs=runs, warmup=warmup, threads=threads, calibration=samples
        )
    write_atomic(out_file, variant.data)
    record = {"file": str(out_file), **variant.to_json()}
    if json_out:
        print_json(record)
        return
    table = Table(title=f"int8 variant ({variant.method}) of {file.name} -> {out_file}")
    table.add_column("")
    table.add_column("fp32", justify="right")
    table.add_column("int8", justify="right")
    table.add_row("size MB", fmt(variant.fp32_bytes / 1e6), fmt(variant.int8_bytes / 1e6))
    table.add_row("median latency ms", fmt(variant.fp32_latency_ms), fmt(variant.int8_latency_ms))
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

    analysis = analyse_file(file, input_shape, fine)
    with progress("profiling", len(analysis.blocks)) as step:
        timings = profile_blocks(analysis, runs=runs, warmup=warmup, threads=threads, on_block=step)
    comparison = compare(timings)
    if json_out:
        print_json(
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
        table.add_row(t.name, fmt(t.gflops), fmt(t.median_ms), fmt(est), f"{ratio:.2f}")
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
    write_atomic(out_file, model.SerializeToString())
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

    analysis = analyse_file(file, input_shape)
    head = make_exit_head(analysis, after, classes, seed)
    checked = attach_exit(analysis, after, head)
    write_atomic(out_file, head.SerializeToString())
    out.print(f"wrote {out_file}: {fmt(checked.gflops)} GFLOP, {fmt(checked.params_mb)} MB")
