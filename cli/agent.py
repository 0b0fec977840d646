"""`continuum agent`: the edge agent. Flags override the CONTINUUM_AGENT_* environment."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.errors import fail

SYSTEMD_UNIT = """\
# /etc/systemd/system/continuum-agent.service
# Put the agent's options in /etc/continuum/agent.env (mode 0600), for example:
#   CONTINUUM_AGENT_SERVER=https://continuum.example:8080
#   CONTINUUM_AGENT_ENROLL_TOKEN=cnt_enroll_...   (needed only for the first start)
#   CONTINUUM_AGENT_TIER=edge
# then: systemctl daemon-reload && systemctl enable --now continuum-agent
[Unit]
Description=Continuum edge agent (DNN inference placement)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exe} agent
EnvironmentFile=-/etc/continuum/agent.env
Environment=CONTINUUM_AGENT_STATE_DIR=/var/lib/continuum-agent
# A transient user of its own; its credential and artifact cache live in StateDirectory.
DynamicUser=yes
StateDirectory=continuum-agent
StateDirectoryMode=0700
Restart=always
RestartSec=5
# Hardening: the agent reads its state directory and the battery, listens on TCP, and
# nothing else.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources @mount @debug @cpu-emulation @obsolete
ReadOnlyPaths=/sys/class/power_supply
UMask=0077
# Left off on purpose: onnxruntime's CPU kernels are precompiled, but execution
# providers built on oneDNN generate code at run time (xbyak JIT), which this setting
# kills at the first model load.
MemoryDenyWriteExecute=no

[Install]
WantedBy=multi-user.target
"""


def systemd_unit() -> str:
    exe = shutil.which("continuum") or str(Path(sys.executable).with_name("continuum"))
    return SYSTEMD_UNIT.format(exe=exe)


def _labels(raw: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--labels: expected k=v,k2=v2 (got {item!r})")
        labels[key.strip()] = value.strip()
    return labels


def agent_command(
    server: Annotated[str | None, typer.Option(help="The control plane's URL.")] = None,
    enroll_token: Annotated[
        str | None, typer.Option(help="Enrollment token (only until the agent has enrolled).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Device id (default: the host name).")] = None,
    tier: Annotated[str | None, typer.Option(help="device, edge or cloud.")] = None,
    labels: Annotated[str | None, typer.Option(help="k=v,k2=v2")] = None,
    power_idle: Annotated[float | None, typer.Option(help="Idle power, W.")] = None,
    power_busy: Annotated[float | None, typer.Option(help="Busy power, W.")] = None,
    battery: Annotated[
        str | None, typer.Option(help="auto, none, or emulated:CAPACITY_WH:LEVEL_PCT.")
    ] = None,
    listen: Annotated[str | None, typer.Option(help="The data plane's HOST:PORT.")] = None,
    advertise_url: Annotated[
        str | None, typer.Option(help="How peers reach the data plane (default from --listen).")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Credential, artifact cache, last desired state.")
    ] = None,
    emulate_gflops: Annotated[
        float | None, typer.Option(help="Compute as slowly as a device of G GFLOP/s (demos).")
    ] = None,
    heartbeat_interval: Annotated[float | None, typer.Option(help="Seconds.")] = None,
    probe_interval: Annotated[
        float | None, typer.Option(help="Seconds between bandwidth probes per peer.")
    ] = None,
    unused_probe_interval: Annotated[
        float | None,
        typer.Option(help="At most one probe of a link no plan uses per this many seconds."),
    ] = None,
    unused_probe_bytes: Annotated[
        int | None, typer.Option(help="The most one unused-link probe uploads.")
    ] = None,
    peers_refresh: Annotated[
        float | None, typer.Option(help="Seconds between asks for the peers to probe.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="onnxruntime intra-op threads (0: its default).")
    ] = None,
    max_tensor_mb: Annotated[float | None, typer.Option(help="Largest tensor accepted.")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Serve the data plane over HTTPS with this PEM cert.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The PEM private key of --tls-cert.")] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(help="PEM CA bundle trusted for the control plane and next hops."),
    ] = None,
    print_systemd_unit: Annotated[
        bool, typer.Option("--print-systemd-unit", help="Print a hardened systemd unit; exit.")
    ] = False,
) -> None:
    """Run the edge agent: enroll, heartbeat, serve partitions, forward tensors."""
    if print_systemd_unit:
        typer.echo(systemd_unit(), nl=False)
        return
    from pydantic import ValidationError

    from agents.main import FatalError, run_agent
    from agents.settings import AgentSettings

    given: dict[str, Any] = {
        "server": server, "enroll_token": enroll_token, "name": name, "tier": tier,
        "power_idle_w": power_idle, "power_busy_w": power_busy, "battery": battery,
        "listen": listen, "advertise_url": advertise_url, "state_dir": state_dir,
        "emulate_gflops": emulate_gflops, "heartbeat_interval_s": heartbeat_interval,
        "probe_interval_s": probe_interval, "threads": threads, "max_tensor_mb": max_tensor_mb,
        "tls_cert": tls_cert, "tls_key": tls_key, "ca_file": ca_file,
        "unused_probe_interval_s": unused_probe_interval,
        "unused_probe_bytes": unused_probe_bytes, "peers_refresh_s": peers_refresh,
    }  # fmt: skip
    if labels is not None:
        given["labels"] = _labels(labels)
    try:
        settings = AgentSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a rule across fields: the message names them
            fail(message.replace("tls_cert", "--tls-cert").replace("tls_key", "--tls-key"))
        fail(f"--{str(err['loc'][0]).replace('_', '-')}: {message}")
    if settings.power_busy_w < settings.power_idle_w:
        fail("--power-busy: must be at least --power-idle")
    try:
        run_agent(settings)
    except FatalError as exc:
        fail(str(exc))
