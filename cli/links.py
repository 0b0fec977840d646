"""`continuum links proposals|accept ID|reject ID`: the links agents found to same-site
neighbours and measured, waiting for an operator (docs/control-plane.md, "Links")."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cli.errors import fail
from cli.remote import JsonOpt, ServerOpt, TokenOpt, connect
from cli.render import make_console

links_app = typer.Typer(
    help="Links agents propose to same-site neighbours: list, accept, reject.",
    no_args_is_help=True,
    add_completion=False,
)

IdArg = Annotated[str, typer.Argument(help="The proposal's id (`continuum links proposals`).")]


def _proposal_id(raw: str) -> int:
    # Checked here, not by typer: a bad id is one `error:` line and exit 2, like the rest.
    if not raw.isdigit() or int(raw) < 1:
        fail(f"ID: a proposal id is a positive whole number (got {raw!r})")
    return int(raw)


@links_app.command("proposals")
def proposals(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Every proposal: the pair, who measured it, its Mbit/s and RTT, and its state."""
    rows = connect(server, token).call("GET", "/v1/links/proposals")
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    table = Table(title=f"link proposals ({len(rows)})", title_justify="left")
    for col in ("id", "link", "site", "proposer", "Mbit/s", "RTT ms", "state", "decided by"):
        table.add_column(col, no_wrap=True)
    for p in rows:
        table.add_row(
            str(p["id"]), f"{p['a']} ~ {p['b']}", p["site"], p["proposer"], f"{p['mbps']:.1f}",
            f"{p['rtt_ms']:.1f}", p["state"], p.get("decided_by") or "-",
        )  # fmt: skip
    make_console().print(table)


def _decide(action: str, raw: str, server: str | None, token: str | None) -> None:
    view = connect(server, token).call("POST", f"/v1/links/proposals/{_proposal_id(raw)}/{action}")
    link = f" (declared link {view['link_id']})" if view.get("link_id") else ""
    typer.echo(f"link proposal {view['id']} {view['a']} ~ {view['b']} {view['state']}{link}")


@links_app.command("accept")
def accept(proposal: IdArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Declare the proposed link at its measured figures (audited)."""
    _decide("accept", proposal, server, token)


@links_app.command("reject")
def reject(proposal: IdArg, server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Reject the proposal (audited); the pair is not proposed again."""
    _decide("reject", proposal, server, token)
