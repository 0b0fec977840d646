"""`continuum server`: the control plane's HTTP API under uvicorn."""

from __future__ import annotations

import importlib.util
from typing import Annotated

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

    try:
        settings = Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        fail(f"CONTINUUM_{str(err['loc'][0]).upper()}: {err['msg']}")
    if port is not None and not 1 <= port <= 65535:
        fail(f"--port: must be within 1..65535 (got {port})")
    try:
        load_series(settings.grid_series)  # read once now: a bad file stops the start here
    except (CarbonInputError, OSError) as exc:
        fail(f"CONTINUUM_GRID_SERIES: {exc}")
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        loop=_fastest("uvloop", "asyncio"),
        http=_fastest("httptools", "h11"),
        log_level=log_level,
        access_log=access_log,
        # Agents hold a connection open between heartbeats.
        timeout_keep_alive=30,
    )
