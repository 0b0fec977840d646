"""The durable schema on SQLite and PostgreSQL: migrations, drift, sessions, restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator.db import make_engine, migrate, session_factory
from orchestrator.db.tables import (
    ApiKey,
    Artifact,
    AuditEntry,
    Base,
    Cascade,
    Deployment,
    Device,
    EnrollmentToken,
    ExitHead,
    Link,
    Model,
    PlacementSettings,
    PlanVersion,
    Rollout,
)
from orchestrator.settings import Settings

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for an empty database of either kind.

    The PostgreSQL database is the session's (`pg_url`): it is downgraded to base after
    each test so the next one starts empty too.
    """
    data_dir = tmp_path / "data"  # not created: make_engine must create it
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir, database_url=None)
        return
    url = request.getfixturevalue("pg_url")
    yield Settings(data_dir=data_dir, database_url=url)
    migrate.downgrade(url, "base")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    migrate.upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def _as_utc(value: datetime) -> datetime:
    # SQLite has no time zone type: aware datetimes come back naive (in UTC as written).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _one_of_each() -> list[list[Base]]:
    """A row of every table, in groups to flush in order: the tables declare foreign keys
    but no relationships, so the ORM does not order their inserts by itself."""
    artifact = Artifact(sha256="f" * 64, size=1234, kind="model", created_at=NOW)
    plan = PlanVersion(
        created_at=NOW, solver="heuristic", status="feasible", solve_s=0.1,
        reason="first plan", scenario={"devices": []}, plan={"assignments": []},
    )  # fmt: skip
    model = Model(
        id="resnet18", artifact_sha256="f" * 64, input_mb=0.6,
        inputs=[{"name": "x", "shape": [1, 3, 224, 224], "dtype": "float32"}],
        outputs=[{"name": "y", "shape": [1, 1000], "dtype": "float32"}],
        blocks=[{"name": "b0", "gflops": 1.8, "params_mb": 44.6, "out_mb": 0.004}],
        total_gflops=1.8, params_mb=44.6, created_at=NOW,
    )  # fmt: skip
    exit_head = ExitHead(
        model_id="resnet18", after="b0", artifact_sha256="f" * 64, gflops=0.01,
        params_mb=0.5, created_at=NOW,
    )  # fmt: skip
    rollout = Rollout(plan_version=1, state="loading", started_at=NOW)
    independent: list[Base] = [
        Device(
            id="cam-1", name="camera 1", tier="device", gflops=20.0, memory_mb=2048.0,
            power_idle_w=2.0, power_busy_w=7.5, battery_capacity_wh=40.0,
            labels={"site": "line-3"}, data_plane_url="http://10.0.0.5:9000",
            agent_token_hash="a" * 64, created_at=NOW, updated_at=NOW,
        ),
        Link(a="cam-1", b="gw-1", mbps=100.0, rtt_ms=2.0, created_at=NOW),
        EnrollmentToken(
            token_hash="e" * 64, expires_at=NOW + timedelta(hours=1),
            created_by="operator:x", created_at=NOW,
        ),
        ApiKey(name="admin", token_hash="k" * 64, created_at=NOW),
        Cascade(id="fast-then-full", stages=[{"model": "resnet18"}], created_at=NOW),
        Deployment(id="line-3", spec={"model": "resnet18"}, created_at=NOW, updated_at=NOW),
        AuditEntry(at=NOW, actor="loop", action="plan", target="plan/1"),
        PlacementSettings(id=1),
    ]  # fmt: skip
    return [[artifact, plan, *independent], [model, rollout], [exit_head]]


def _add_all(session: Session) -> None:
    for group in _one_of_each():
        session.add_all(group)
        session.flush()


def test_migrations_run_up_down_and_up_again(settings: Settings) -> None:
    url = settings.sqlalchemy_url
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert migrate.current(url) == "0008"
    assert _tables(url) == TABLES | {"alembic_version"}

    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _tables(url) == {"alembic_version"}

    migrate.upgrade(url, "head")
    assert migrate.current(url) == "0008"
    assert _tables(url) == TABLES | {"alembic_version"}


def _tables(url: str) -> set[str]:
    engine = make_engine(Settings(database_url=url) if "postgresql" in url else _sqlite(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _sqlite(url: str) -> Settings:
    return Settings(data_dir=Path(url.removeprefix("sqlite:///")).parent, database_url=None)


def test_migrated_schema_matches_the_tables(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_every_table_round_trips_through_a_session(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        _add_all(session)

    with sessions() as session:
        device = session.get_one(Device, "cam-1")
        assert device.labels == {"site": "line-3"}
        assert device.state == "active"  # column defaults apply
        assert device.battery_min_pct == 20.0
        assert _as_utc(device.created_at) == NOW
        model = session.get_one(Model, "resnet18")
        assert model.inputs[0]["shape"] == [1, 3, 224, 224]
        assert model.detail == {}
        exit_head = session.scalars(select(ExitHead)).one()
        assert (exit_head.model_id, exit_head.threshold) == ("resnet18", 0.8)
        link = session.scalars(select(Link)).one()
        assert (link.a, link.b, link.j_per_mb) == ("cam-1", "gw-1", 0.0)
        token = session.scalars(select(EnrollmentToken)).one()
        assert (token.uses, token.single_use) == (0, False)
        assert _as_utc(token.expires_at) == NOW + timedelta(hours=1)
        assert session.scalars(select(ApiKey)).one().revoked_at is None
        assert session.get_one(Artifact, "f" * 64).size == 1234
        assert session.get_one(Cascade, "fast-then-full").stages == [{"model": "resnet18"}]
        assert session.get_one(Deployment, "line-3").status == "pending"
        plan = session.scalars(select(PlanVersion)).one()
        assert (plan.version, plan.in_force, plan.stats) == (1, False, {})
        rollout = session.scalars(select(Rollout)).one()
        assert (rollout.plan_version, rollout.acks) == (1, {})
        assert session.scalars(select(AuditEntry)).one().reason == ""
        assert session.get_one(PlacementSettings, 1).horizon_h == 8.0


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(
            Model(
                id="orphan",
                artifact_sha256="0" * 64,
                input_mb=1.0,
                inputs=[],
                outputs=[],
                blocks=[],
                total_gflops=1.0,
                params_mb=1.0,
                created_at=NOW,
            )
        )


def test_unique_constraints_are_enforced(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        session.add(Link(a="a", b="b", mbps=1.0, rtt_ms=1.0, created_at=NOW))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Link(a="a", b="b", mbps=2.0, rtt_ms=1.0, created_at=NOW))


def test_data_survives_a_restart(settings: Settings) -> None:
    migrate.upgrade(settings.sqlalchemy_url)
    first = make_engine(settings)
    with session_factory(first).begin() as session:
        _add_all(session)
    first.dispose()

    second = make_engine(settings)
    try:
        with session_factory(second)() as session:
            assert session.get_one(Device, "cam-1").name == "camera 1"
            assert session.get_one(PlacementSettings, 1).energy == 1.0
    finally:
        second.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(Settings(data_dir=tmp_path / "data", database_url=None))
    try:
        with engine.connect() as connection:
            assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert (tmp_path / "data" / "continuum.db").is_file()
    finally:
        engine.dispose()


def test_bare_postgresql_url_uses_psycopg_3(pg_url: str) -> None:
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(Settings(database_url=bare))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT 1")) == 1
    finally:
        engine.dispose()
