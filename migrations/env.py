"""Alembic environment: run migrations online against `sqlalchemy.url` of the Config.

`orchestrator.db.migrate` builds the Config in code (no alembic.ini); the engine comes
from the same factory as the server's, so SQLite gets the same pragmas.
"""

from __future__ import annotations

from alembic import context

from orchestrator.db.engine import create_url_engine
from orchestrator.db.tables import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("migrations need sqlalchemy.url in the Alembic Config")
    engine = create_url_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things: batch mode copies the table instead.
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; give a database URL")
run_migrations_online()
