"""The SQLAlchemy engine and session factory for the configured database.

Embedded (no `CONTINUUM_DATABASE_URL`): a SQLite file in `data_dir`, in WAL mode so the
API's readers do not block the reconcile loop's writer. Otherwise PostgreSQL via psycopg 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from orchestrator.private import private_dir, private_file
from orchestrator.settings import Settings

# SQLite waits this long for another writer's lock before raising "database is locked".
_SQLITE_BUSY_TIMEOUT_S = 15.0


def normalize_url(url: str) -> str:
    """Check that the URL names a supported database, and pin PostgreSQL to psycopg 3: a
    bare `postgresql://` would select psycopg2, which is not installed.

    Raises sqlalchemy's ArgumentError for a malformed or unsupported URL.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise ArgumentError(
            f"unsupported database {parsed.drivername!r}: "
            "use postgresql+psycopg://user@host/db or sqlite:///path"
        )
    return parsed.render_as_string(hide_password=False)


def create_url_engine(url: str) -> Engine:
    """An engine for a URL (used by migrations too, which take a URL, not Settings)."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def make_engine(settings: Settings) -> Engine:
    if settings.embedded:
        private_dir(settings.data_dir)
    return create_url_engine(settings.sqlalchemy_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects returned by the service layer stay readable after
    # their session closes (the API serializes them afterwards).
    return sessionmaker(bind=engine, expire_on_commit=False)


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        # SQLite gives its -wal and -shm files the database file's mode: 0600 for all.
        database = private_file(Path(parsed.database))
        for suffix in ("-wal", "-shm"):
            side = database.with_name(database.name + suffix)
            if side.exists():
                private_file(side)
    engine = create_engine(
        url,
        # The API serves requests from a thread pool; one connection may be used by
        # several threads over its life (never at once: the pool hands it to one).
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_S},
    )
    event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Foreign keys are off by default in SQLite, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL persists in the file, but setting it per connection is cheap and idempotent.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
