"""Entry point of the `continuum` console script."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import typer

from cli.about import HELP


def __getattr__(name: str) -> Any:
    """`cli.main.app`, every command, imported on first use (PEP 562)."""
    if name == "app":
        from cli.commands import app

        return app
    raise AttributeError(name)


def _solve_only() -> typer.Typer:
    """The app with `solve` alone. `continuum solve` is the one command run on large
    files, often: importing every other command (the server, the database, the
    simulator, HTTP clients) cost it about 0.3 s of CPU for nothing."""
    from cli.solve import solve_command

    solo = typer.Typer(name="continuum", help=HELP, no_args_is_help=True, add_completion=False)
    solo.command(name="solve")(solve_command)

    @solo.callback()
    def _group() -> None:
        """A group, so that `solve` stays a subcommand's name, not an argument."""

    return solo


def main() -> None:
    """The console script: usage errors become one `error:` line and exit code 2."""
    solving = sys.argv[1:2] == ["solve"]
    if solving:
        app = _solve_only()
    else:
        from cli.commands import app
    try:
        code = app(standalone_mode=False)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # typer bundles its own click: recognise its usage errors by shape, not by class.
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(getattr(exc, "ctx").get_help())  # noqa: B009 - ctx is set on this error
            sys.exit(0)
        message = getattr(exc, "format_message", None)
        if callable(message) and getattr(exc, "exit_code", None) == 2:
            text = " ".join(str(message()).split())
            print(f"error: {text}", file=sys.stderr)
            sys.exit(2)
        if type(exc).__name__ == "Abort":
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        raise
    code = code if isinstance(code, int) else 0
    if solving:
        _exit_at_once(code)
    sys.exit(code)


def _exit_at_once(code: int) -> None:
    """Exit without tearing the interpreter down. After a 10,000-device solve, freeing its
    millions of route and cost objects one by one, and the collection at shutdown, took
    1.5 to 2.5 s of CPU, for nothing: the process is ending. Only for `solve`, whose work
    is done and printed by now (no pool or thread of its own is left to join); the output
    and the log handlers are flushed first."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
