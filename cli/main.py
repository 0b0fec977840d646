"""Entry point of the `continuum` console script."""

from __future__ import annotations

import logging
import os
import sys

import typer

from cli.agent import agent_command
from cli.check import check_command
from cli.db import db_app
from cli.demo import demo_command
from cli.fleet import cordon_command, deploy_command, drain_command, fleet_app, uncordon_command
from cli.links import links_app
from cli.model import model_app
from cli.server import server_command
from cli.simulate import simulate_command, sweep_command
from cli.solve import solve_command

app = typer.Typer(
    name="continuum",
    help="Place DNN inference across device, edge and cloud at the least energy and carbon.",
    no_args_is_help=True,
    add_completion=False,
)
app.command(name="solve")(solve_command)
app.command(name="check")(check_command)
app.command(name="server")(server_command)
app.add_typer(db_app, name="db")
app.command(name="agent")(agent_command)
app.command(name="demo")(demo_command)
app.add_typer(model_app, name="model")
app.command(name="simulate")(simulate_command)
app.command(name="simulate-sweep")(sweep_command)
app.add_typer(fleet_app, name="fleet")
app.add_typer(links_app, name="links")
app.command(name="deploy")(deploy_command)
app.command(name="cordon")(cordon_command)
app.command(name="drain")(drain_command)
app.command(name="uncordon")(uncordon_command)


def main() -> None:
    """The console script: usage errors become one `error:` line and exit code 2."""
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
    if sys.argv[1:2] == ["solve"]:
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
