"""Bad rows left by an older version (orchestrator/integrity.py): found on SQLite and on
PostgreSQL, listed by `continuum db check` (exit 1), and logged when the control plane
starts."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from cli.main import app
from orchestrator import integrity
from orchestrator.control_plane import ControlPlane
from orchestrator.db import migrate
from orchestrator.db.engine import create_url_engine, session_factory
from orchestrator.db.tables import ApiKey, Device, PlacementSettings
from orchestrator.settings import Settings

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _device(name: str, **fields: object) -> Device:
    values: dict[str, object] = {
        "id": name, "name": name, "tier": "edge", "gflops": 10.0, "memory_mb": 100.0,
        "power_idle_w": 1.0, "power_busy_w": 2.0, "labels": {}, "emulated": False,
        "data_plane_url": f"http://{name}:9000", "state": "active",
        "agent_token_hash": name.ljust(64, "0"), "created_at": NOW, "updated_at": NOW,
        **fields,
    }  # fmt: skip
    return Device(**values)


def _store_junk(engine: Engine, nul: bool) -> None:
    with session_factory(engine).begin() as session:
        session.add(_device("good"))
        session.add(_device("inf", gflops=float("inf")))
        session.add(_device("js", data_plane_url="javascript:alert(1)"))
        # JSON columns are written escaped: a lone surrogate goes in, and comes back out.
        session.add(_device("label", labels={"line": "\ud800"}))
        if nul:  # PostgreSQL refuses NUL itself; SQLite stored it
            session.add(ApiKey(name="a\x00b", token_hash="f" * 64, created_at=NOW))
        # (SQLite stores NaN as NULL, so only Infinity can be left there.)
        session.add(PlacementSettings(id=1, energy=float("-inf"), hysteresis=0.05))


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_the_scan_finds_every_kind_of_bad_value(
    db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("fresh_pg") if db == "postgres"
        else f"sqlite:///{tmp_path / 'continuum.db'}"
    )  # fmt: skip
    migrate.upgrade(url)
    engine = create_url_engine(url)
    try:
        _store_junk(engine, nul=db == "sqlite")
        with session_factory(engine)() as session:
            found = {str(row) for row in integrity.scan(session)}
        expected = {
            "devices[inf].gflops: is inf, not a finite number",
            "devices[js].data_plane_url: is not an http(s) URL with a host",
            "devices[label].labels.line: holds a lone surrogate (not UTF-8)",
            "placement_settings[1].energy: is -inf, not a finite number",
        }
        if db == "sqlite":
            expected.add("api_keys[1].name: holds a NUL character")
        assert found == expected
        with session_factory(engine).begin() as session:
            session.execute(update(Device).values(gflops=1.0, labels={}, data_plane_url="http://x"))
            session.execute(update(PlacementSettings).values(energy=1.0))
            session.query(ApiKey).delete()
        with session_factory(engine)() as session:
            assert integrity.scan(session) == []
    finally:
        engine.dispose()


def _cli(*args: str, **env: str) -> tuple[int, str]:
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CONTINUUM_")}
    result = CliRunner().invoke(app, list(args), env={**unset, **env})
    return result.exit_code, result.output


async def test_db_check_lists_them_and_the_control_plane_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = str(tmp_path / "data")
    assert _cli("db", "upgrade", CONTINUUM_DATA_DIR=data)[0] == 0
    assert _cli("db", "check", CONTINUUM_DATA_DIR=data) == (0, "no bad rows\n")
    engine = create_url_engine(f"sqlite:///{tmp_path / 'data' / 'continuum.db'}")
    _store_junk(engine, nul=True)
    engine.dispose()
    code, output = _cli("db", "check", CONTINUUM_DATA_DIR=data)
    assert code == 1, output
    assert "lone surrogate" in output and "javascript" not in output
    assert "5 bad value(s)" in output
    settings = Settings(
        data_dir=Path(data), admin_token="cnt_admin_integrity-test", gc_freeze=False
    )
    plane = ControlPlane(settings)
    with caplog.at_level(logging.WARNING, logger="orchestrator.control_plane"):
        await plane.start()
        await plane.stop()
    assert "bad row left from before: devices[inf].gflops" in caplog.text
    assert "5 bad value(s) in the database: run `continuum db check`" in caplog.text
