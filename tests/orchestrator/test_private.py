"""The data directory is 0700 and the embedded database 0600, new or inherited; secrets in
Settings never show in its repr."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import text

from orchestrator.db import make_engine, migrate
from orchestrator.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_embedded_database_is_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=None)
    migrate.upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings)
    try:
        with engine.begin() as conn:  # a write, so WAL creates its side files
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        database = settings.data_dir / "continuum.db"
        assert _mode(settings.data_dir) == 0o700
        assert _mode(database) == 0o600
        wal = database.with_name("continuum.db-wal")
        assert wal.exists() and _mode(wal) == 0o600
    finally:
        engine.dispose()


def test_an_older_wider_install_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "continuum.db"
    database.touch()
    database.chmod(0o644)
    settings = Settings(data_dir=data, database_url=None)
    migrate.upgrade(settings.sqlalchemy_url)
    make_engine(settings).dispose()
    assert _mode(data) == 0o700
    assert _mode(database) == 0o600


def test_urls_are_secrets(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        redis_url="redis://:hunter2@127.0.0.1:6379/0",
        database_url="postgresql+psycopg://u:hunter2@127.0.0.1/db",
    )
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value().endswith("@127.0.0.1:6379/0")
