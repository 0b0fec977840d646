"""What every `continuum model ...` command shares: the Typer app, the consoles, the
options, one-line user errors, progress bars and JSON output (cli/model.py and
cli/model_calibrate.py hold the commands)."""

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


def granularity(fine: bool) -> Granularity:
    return "fine" if fine else "layer"


def analyse_file(file: Path, input_shape: list[str] | None, fine: bool = False) -> ModelAnalysis:
    from models_registry import analyse_model, parse_input_shapes

    shapes = parse_input_shapes(input_shape or [])
    return analyse_model(file, shapes, granularity=granularity(fine))


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
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


def fmt(value: float) -> str:
    return f"{value:.4g}"
