"""Entry point of the `continuum` console script."""

from __future__ import annotations

import typer

from cli.agent import agent_command
from cli.check import check_command
from cli.db import db_app
from cli.model import model_app
from cli.server import server_command
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
app.add_typer(model_app, name="model")


def main() -> None:
    app()
