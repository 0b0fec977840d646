"""`continuum model calibrate` and `continuum model cascade`: exit probabilities, a
cascade's exit rate and a model's accuracy, measured on data the user provides.

Registered on `model_app` when imported (cli/model.py imports it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.model_common import (
    InputShape,
    Threads,
    analyse_file,
    err,
    model_app,
    print_json,
    progress,
    user_errors,
)


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
    exit_spec: Annotated[
        list[str] | None, typer.Option("--exit", help="BLOCK=HEAD.onnx (repeatable).")
    ] = None,
    data: Annotated[
        list[Path] | None, typer.Option(help="Calibration inputs (.npy batch or .npz).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Max-softmax confidence to exit.")] = 0.8,
    prob: Annotated[
        list[str] | None, typer.Option(help="BLOCK=P: state an exit's probability instead.")
    ] = None,
    model_id: Annotated[str, typer.Option("--id", help="Scenario model id.")] = "model",
    accuracy: Annotated[float | None, typer.Option(help="Accuracy you measured.")] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Class labels of the --data samples (.npy of integers): measure "
            "the model's top-1 accuracy on them."
        ),
    ] = None,
    input_shape: InputShape = None,
    threads: Threads = 1,
) -> None:
    """Exit probabilities and accuracy from labelled data; prints a scenario-v1 model."""
    from models_registry import (
        ModelError,
        attach_exit,
        calibrate_exits,
        load_labels,
        load_samples,
        top1_accuracy,
    )

    analysis = analyse_file(file, input_shape)
    heads = [
        attach_exit(analysis, block, Path(path))
        for block, path in _pairs(exit_spec or [], "--exit")
    ]
    stated = {
        block: _probability(p, f"--prob {block}") for block, p in _pairs(prob or [], "--prob")
    }
    unknown = set(stated) - {head.after for head in heads}
    if unknown:
        raise ModelError(f"--prob names {', '.join(sorted(unknown))}, which has no --exit head")
    if labels is not None:
        if accuracy is not None:
            raise ModelError("give --accuracy or --labels, not both")
        if not data:
            raise ModelError("--labels needs the samples they label: give --data")
    elif not heads:
        raise ModelError("nothing to calibrate: give --exit heads, or --data with --labels")
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
    samples = load_samples(data, analysis.inputs[0]) if data else []
    if to_measure:
        with progress("calibrating", len(samples)) as step:
            results = calibrate_exits(
                analysis,
                to_measure,
                samples,
                threshold,
                threads=threads,
                on_sample=lambda k: step(f"sample {k + 1}"),
            )
        probs.update({result.after: round(result.prob, 6) for result in results})
    if labels is not None:
        truth = load_labels(labels, len(samples))
        with progress("measuring accuracy", len(samples)) as step:
            accuracy = round(
                top1_accuracy(analysis, samples, truth, threads=threads,
                              on_sample=lambda k: step(f"sample {k + 1}")),
                6,
            )  # fmt: skip
    exits = sorted(
        (head.to_scenario(probs[head.after]) for head in heads),
        key=lambda e: analysis.block_index(e["after"]),
    )
    print_json(analysis.to_scenario_model(model_id, accuracy=accuracy, exits=exits))


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
    print_json(
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
