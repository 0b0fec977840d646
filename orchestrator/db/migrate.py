"""Schema migrations in code: Alembic driven without an alembic.ini.

`script_location` is the installed `migrations` package, so `continuum db upgrade` works
from a wheel as well as from a checkout.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from orchestrator.db.engine import create_url_engine, normalize_url


def script_location() -> Path:
    """The directory of the `migrations` package: installed beside `orchestrator` in a
    wheel, or the checkout's (an editable install made before `migrations/` became a
    package does not map it)."""
    spec = importlib.util.find_spec("migrations")
    if spec is not None and spec.origin is not None:
        installed = Path(spec.origin).parent
        # "migrations" is a common name: make sure it is ours, not another project's.
        if (installed / "env.py").is_file() and (installed / "versions").is_dir():
            return installed
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    raise RuntimeError("the migrations package is not installed (reinstall continuum)")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # ConfigParser would read "%" in a URL (an escaped password) as interpolation.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    engine = create_url_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
