"""The live fleet from the command line, in the manner of kubectl, through the REST API:
`continuum fleet devices|links|deployments|plans|events`, `continuum deploy FILE`,
`continuum cordon|drain|uncordon DEVICE`, and `continuum fleet login` to keep the server
and token in the config file (mode 0600)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from rich.table import Table

from cli.errors import fail
from cli.remote import JsonOpt, ServerOpt, TokenOpt, answer, config_path, connect, unreachable
from cli.remote import write_config as write_config_file
from cli.render import make_console

fleet_app = typer.Typer(
    help="The live fleet: devices, links, deployments, plans and events.",
    no_args_is_help=True,
    add_completion=False,
)


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def _emit(rows: Any, as_json: bool, table: Table) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
    else:
        make_console().print(table)


@fleet_app.command("devices")
def devices(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Every device: tier, state, alive, utilization, free memory, battery."""
    rows = connect(server, token).call("GET", "/v1/devices")
    table = Table(title=f"devices ({len(rows)})", title_justify="left")
    for col in ("device", "tier", "state", "alive", "util", "free MB", "battery", "GFLOP/s"):
        table.add_column(col, no_wrap=True)
    for d in rows:
        beat = d.get("last_heartbeat") or {}
        battery = d.get("battery")
        level = "mains"
        if battery is not None:
            level = _num(battery.get("level_pct"), "{:.1f}%")
            level += " charging" if beat.get("charging") else ""
        table.add_row(
            d["id"], d["tier"], d["state"], "yes" if d["alive"] else "NO",
            _num(beat.get("utilization"), "{:.0%}"), _num(beat.get("free_memory_mb"), "{:.0f}"),
            level, f"{d['gflops']:g}",
        )  # fmt: skip
    _emit(rows, as_json, table)


@fleet_app.command("links")
def links(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Declared links beside measured ones (Mbit/s, RTT, age), and what the solver uses."""
    body = connect(server, token).call("GET", "/v1/links")
    measured = {(m["a"], m["b"]): m for m in body["measured"]}
    declared = {(d["a"], d["b"]): d for d in body["declared"]}
    table = Table(title=f"links ({len(set(measured) | set(declared))})", title_justify="left")
    for col in ("link", "declared Mbit/s", "measured Mbit/s", "declared RTT", "measured RTT",
                "age", "planned Mbit/s", "from"):  # fmt: skip
        table.add_column(col, no_wrap=True)
    for a, b in sorted(set(measured) | set(declared)):
        d, m = declared.get((a, b)) or {}, measured.get((a, b)) or {}
        plan = m.get("planned") or d.get("planned") or {}
        age = "-" if not m else f"{m['age_s']:.0f}s" + ("" if m["fresh"] else " stale")
        table.add_row(
            f"{a} ~ {b}", _num(d.get("mbps"), "{:g}"), _num(m.get("mbps")),
            _num(d.get("rtt_ms"), "{:g} ms"), _num(m.get("rtt_ms"), "{:.1f} ms"), age,
            _num(plan.get("mbps")), plan.get("source", "-"),
        )  # fmt: skip
    _emit(body, as_json, table)


def _placement(p: dict[str, Any] | None) -> str:
    if not p:
        return "-"
    if p.get("stages"):
        return " -> ".join(f"{s['model']}@{s['device']}" for s in p["stages"])
    parts = []
    for s in p.get("segments") or []:
        blocks = s["first"] if s["first"] == s["last"] else f"{s['first']}..{s['last']}"
        parts.append(f"{blocks}@{s['device']}")
    return " -> ".join(parts) or "-"


@fleet_app.command("deployments")
def deployments(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """Every deployment: status (with why), placement, latency against its SLO, energy."""
    rows = connect(server, token).call("GET", "/v1/deployments")
    table = Table(title=f"deployments ({len(rows)})", title_justify="left")
    for col in ("deployment", "status", "placement", "latency ms", "SLO ms", "J/inf", "why"):
        table.add_column(col, no_wrap=col != "why")
    for d in rows:
        p = d.get("placement") or {}
        table.add_row(
            d["name"], d["status"], _placement(p),
            _num((p.get("latency_ms") or {}).get("worst")), _num(d["spec"].get("slo_ms"), "{:g}"),
            _num(p.get("energy_j"), "{:.4f}"), d.get("reason") or "",
        )  # fmt: skip
    _emit(rows, as_json, table)


@fleet_app.command("plans")
def plans(
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="How many.")] = 20,
) -> None:
    """The plan history, newest first: trigger, solver, objective, energy, carbon, migrated
    MB and solve time. Replay one: GET /v1/plans/N/scenario, then `continuum solve`."""
    rows = connect(server, token).call("GET", "/v1/plans", params={"limit": limit})
    table = Table(title=f"plans (newest {len(rows)})", title_justify="left")
    for col in ("version", "solver", "status", "objective", "J/s", "g/h", "MB", "solve s"):
        table.add_column(col, no_wrap=True)
    table.add_column("trigger")
    for p in rows:
        totals = p.get("totals") or {}
        mark = " (in force)" if p["in_force"] else ("" if p["applied"] else " (kept out)")
        table.add_row(
            f"v{p['version']}{mark}", p["solver"], p["status"], _num(p["objective"], "{:.4g}"),
            _num(totals.get("energy_w"), "{:.3g}"), _num(totals.get("carbon_gph"), "{:.3g}"),
            _num(totals.get("migration_mb"), "{:.2f}"), _num(p["solve_s"], "{:.3f}"),
            p["trigger"],
        )  # fmt: skip
    _emit(rows, as_json, table)


@fleet_app.command("events")
def events(
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many events.")
    ] = None,
) -> None:
    """Follow the event stream (placements, rollouts, triggers, re-placements) until
    Ctrl-C; with --json one JSON object a line."""
    remote = connect(server, token)
    seen = 0
    kind = ""
    try:
        with remote.client(timeout_s=None) as client, client.stream("GET", "/v1/events") as r:
            if not r.is_success:
                r.read()
                answer(r)
            for line in r.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if as_json:
                        typer.echo(json.dumps({"type": kind, **data}))
                    else:
                        typer.echo(_event_line(kind, data))
                    seen += 1
                    if count is not None and seen >= count:
                        return
    except httpx.HTTPError as exc:
        unreachable(remote.server, exc)


def _event_line(kind: str, data: dict[str, Any]) -> str:
    at = data.get("at")
    stamp = dt.datetime.fromtimestamp(at, dt.UTC).strftime("%H:%M:%S") if at else "--:--:--"
    rest = {k: v for k, v in data.items() if k != "at"}
    why = rest.pop("reason", None)
    fields = " ".join(f"{k}={v}" for k, v in rest.items() if not isinstance(v, dict | list))
    return f"{stamp} {kind:<11} {fields}" + (f"  ({why})" if why else "")


@fleet_app.command("login")
def login(
    server: Annotated[str, typer.Option("--server", help="Control plane URL.")],
    token: Annotated[str, typer.Option("--token", help="Operator token.", show_default=False)],
) -> None:
    """Check the token against the server, then keep both in the config file (0600)."""
    remote = connect(server, token)
    remote.call("GET", "/v1/devices")
    path = config_path()
    write_config_file(path, remote.server, remote.token)
    typer.echo(f"saved {remote.server} and the token in {path} (mode 0600)")


def deploy_command(
    file: Annotated[Path, typer.Argument(help="A deployment (YAML or JSON), or a list of them.")],
    server: ServerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create the deployments in FILE (the body of POST /v1/deployments, one mapping or a
    list); the planner places them and `continuum fleet deployments` shows where."""
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"{file}: cannot read it: {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        fail(f"{file}: not YAML or JSON: {exc}")
    specs = loaded if isinstance(loaded, list) else [loaded]
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            fail(f"{file}: entry {i}: a deployment is a mapping (name, model, source, rate_rps)")
    remote = connect(server, token)
    made = []
    for spec in specs:
        view = remote.call("POST", "/v1/deployments", json=spec)
        view.pop("data_plane_token", None)  # a secret: `GET .../token` shows it on purpose
        made.append(view)
        if not as_json:
            typer.echo(f"deployment {view['name']} created ({view['status']})")
    if as_json:
        typer.echo(json.dumps(made, indent=1, default=str))


def _state_command(action: str, done: str) -> Any:
    def command(
        device: Annotated[str, typer.Argument(help="The device id.")],
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        view = connect(server, token).call("POST", f"/v1/devices/{device}/{action}")
        typer.echo(f"device {view['id']} {done} (state {view['state']})")

    command.__doc__ = {
        "cordon": "Place nothing new on DEVICE; what runs there moves at the next re-solve.",
        "drain": "Move everything off DEVICE now (it may still be a source or sink).",
        "uncordon": "Let the planner use DEVICE again.",
    }[action]
    return command


cordon_command = _state_command("cordon", "cordoned")
drain_command = _state_command("drain", "draining")
uncordon_command = _state_command("uncordon", "back in service")
