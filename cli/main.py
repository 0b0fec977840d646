"""Entry point of the `continuum` console script."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="continuum",
    help="Place DNN inference across device, edge and cloud at the least energy and carbon.",
    no_args_is_help=True,
    add_completion=False,
)


def main() -> None:
    app()
