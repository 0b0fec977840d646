"""How the command line fails: exit 2 with one line on standard error, nothing else."""

from __future__ import annotations

from typing import NoReturn

import typer

BAD_INPUT = 2


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    """Print `error: message` as a single line on stderr and exit.

    Messages can carry a newline from a library (a YAML mark, a pydantic detail); they are
    folded so that scripts reading the first line of stderr read all of it.
    """
    line = " ".join(message.split())
    typer.echo(f"error: {line}", err=True)
    raise typer.Exit(code)
