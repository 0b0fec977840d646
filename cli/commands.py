"""Every command of the `continuum` console script, in one Typer app (`cli.main` runs it)."""

from __future__ import annotations

import typer

from cli.about import HELP
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
    help=HELP,
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
