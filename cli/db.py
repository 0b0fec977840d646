"""`continuum db`: migrate the durable schema of the configured database.

The database is the one the server would use: `CONTINUUM_DATABASE_URL`, or the embedded
SQLite file in `CONTINUUM_DATA_DIR`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from cli.errors import fail
from orchestrator.private import private_dir
from orchestrator.settings import Settings

if TYPE_CHECKING:  # alembic and SQLAlchemy load only when a db command runs
    from sqlalchemy.exc import SQLAlchemyError

db_app = typer.Typer(
    help="Migrate the control plane's database (CONTINUUM_DATABASE_URL or embedded SQLite).",
    no_args_is_help=True,
)


def _url() -> str:
    try:
        settings = Settings()
    except ValidationError as exc:
        fail(f"settings: {exc.errors()[0]['msg']}")
    if settings.embedded:
        try:
            private_dir(settings.data_dir)
        except OSError as exc:
            fail(f"cannot create the data directory {settings.data_dir}: {exc.strerror}")
    return settings.sqlalchemy_url


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn what a person can fix (a bad URL, a database down, an unknown revision) into
    one line; anything else is a bug and keeps its traceback."""
    from alembic.util.exc import CommandError
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        yield
    except CommandError as exc:
        fail(str(exc))
    except ArgumentError as exc:
        fail(f"CONTINUUM_DATABASE_URL: {exc}")
    except SQLAlchemyError as exc:
        fail(f"database: {_first_line(exc)}")


def _first_line(exc: SQLAlchemyError) -> str:
    # The driver's own message, without SQLAlchemy's SQL echo and help-link lines.
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc)
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


def _migrate() -> ModuleType:
    from orchestrator.db import migrate

    return migrate


def _run(action: Callable[[str], None]) -> None:
    url = _url()
    with _database_errors():
        action(url)


@db_app.command("upgrade")
def upgrade_command(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to a revision (the latest by default)."""
    _run(lambda url: _migrate().upgrade(url, revision))
    typer.echo(f"database at {_current_or_none()}")


@db_app.command("downgrade")
def downgrade_command(
    revision: Annotated[
        str, typer.Argument(help="'base', a revision such as '0001', or '-- -1' for one step.")
    ],
) -> None:
    """Migrate the database down to a revision ('base' drops every table)."""
    _run(lambda url: _migrate().downgrade(url, revision))
    typer.echo(f"database at {_current_or_none()}")


@db_app.command("current")
def current_command() -> None:
    """Print the revision the database is at ('none' when never migrated)."""
    typer.echo(_current_or_none())


def _current_or_none() -> str:
    url = _url()
    revision: str | None = None
    with _database_errors():
        revision = _migrate().current(url)
    return revision or "none"


@db_app.command("check")
def check_command() -> None:
    """List the values stored by an older version that no read can serve (Infinity, NUL,
    lone surrogates, a non-http data-plane URL). Exit 1 when there are any."""
    from rich.table import Table

    from cli.render import make_console
    from orchestrator.db.engine import create_url_engine, session_factory
    from orchestrator.integrity import scan

    url = _url()
    bad = []
    with _database_errors():
        engine = create_url_engine(url)
        try:
            with session_factory(engine)() as session:
                bad = scan(session)
        finally:
            engine.dispose()
    console = make_console()
    if not bad:
        console.print("no bad rows")
        return
    table = Table("table", "row", "field", "problem")
    for row in bad:
        table.add_row(row.table, row.key, row.field, row.problem)
    console.print(table)
    console.print(f"{len(bad)} bad value(s): fix or delete these rows (the API refuses them now)")
    raise typer.Exit(1)
