"""`continuum server`: the control plane's HTTP API under uvicorn."""

from __future__ import annotations

import importlib.util
import ssl
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from cli.errors import fail


def _fastest(module: str, fallback: str) -> str:
    """uvloop and httptools when installed (several times faster per request), else the
    pure-Python implementations uvicorn ships with."""
    return module if importlib.util.find_spec(module) is not None else fallback


def server_command(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default CONTINUUM_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to bind (default CONTINUUM_PORT).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = False,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="Serve HTTPS with this PEM cert (CONTINUUM_TLS_CERT)."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="The PEM private key of --tls-cert (CONTINUUM_TLS_KEY)."),
    ] = None,
) -> None:
    """Run the control plane. With nothing configured it is embedded: a SQLite file and an
    in-process live state under CONTINUUM_DATA_DIR, migrated at start; an admin token is
    generated there on first start unless CONTINUUM_ADMIN_TOKEN is set."""
    import uvicorn
    from pydantic import ValidationError

    from api.app import create_app
    from orchestrator.carbon.derive import CarbonInputError
    from orchestrator.carbon.live import load_series
    from orchestrator.settings import Settings

    given: dict[str, Any] = {"tls_cert": tls_cert, "tls_key": tls_key}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        if not err["loc"]:  # a rule across fields: the message names them
            fail(message.replace("tls_cert", "--tls-cert").replace("tls_key", "--tls-key"))
        fail(f"CONTINUUM_{str(err['loc'][0]).upper()}: {message}")
    if settings.tls_cert is not None and settings.tls_key is not None:
        _check_pair(settings.tls_cert, settings.tls_key)
    if port is not None and not 1 <= port <= 65535:
        fail(f"--port: must be within 1..65535 (got {port})")
    try:
        load_series(settings.grid_series)  # read once now: a bad file stops the start here
    except (CarbonInputError, OSError) as exc:
        fail(f"CONTINUUM_GRID_SERIES: {exc}")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        loop=_fastest("uvloop", "asyncio"),
        http=_fastest("httptools", "h11"),
        log_level=log_level,
        access_log=access_log,
        # Agents hold a connection open between heartbeats.
        timeout_keep_alive=30,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        # A request still running this long after SIGTERM is cut (an upload's staging
        # file is swept at the next start).
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
    )
    control_plane = app.state.control_plane

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn waits for every open connection before its shutdown: long polls
            # (up to 30 s) and event streams (forever) must be told to end first.
            super().handle_exit(sig, frame)
            control_plane.begin_shutdown()

    Server(config).run()


def _check_pair(cert: Path, key: Path) -> None:
    """Load the pair once before starting, so a wrong file is one line, not a traceback."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        fail(f"--tls-cert {cert} / --tls-key {key}: {exc.reason or exc}")
    except OSError as exc:
        fail(f"--tls-cert {cert} / --tls-key {key}: {exc.strerror or exc}")
