"""Audit-log retention by age and by count, on SQLite and PostgreSQL, and the periodic
sweep of a running control plane."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from orchestrator import audit
from orchestrator.control_plane import ControlPlane
from orchestrator.db import make_engine, migrate, session_factory
from orchestrator.db.tables import AuditEntry
from orchestrator.live.memory import MemoryLiveState
from orchestrator.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = request.getfixturevalue("fresh_pg") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    migrate.upgrade(settings.sqlalchemy_url)
    made = make_engine(settings)
    yield made
    made.dispose()


def _add(session: Session, days_ago: float, n: int) -> None:
    at = audit.now() - timedelta(days=days_ago)
    for k in range(n):
        session.add(AuditEntry(at=at, actor="operator:t", action="x", target=f"t{k}", detail={}))


def _actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_entries_older_than_the_retention_go(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        _add(session, 100, 3)
        _add(session, 10, 2)
    with sessions.begin() as session:
        assert audit.sweep(session, audit.now(), 30, None) == 3
    with sessions.begin() as session:
        assert _actions(session) == ["x", "x", "audit.swept"]
        swept = session.scalars(select(AuditEntry).where(AuditEntry.action == "audit.swept")).one()
        assert swept.detail["removed"] == 3
        # Nothing more to remove: no second sweep entry.
        assert audit.sweep(session, audit.now(), 30, None) == 0
        assert len(_actions(session)) == 3


def test_only_the_newest_rows_are_kept(engine: Engine) -> None:
    sessions = session_factory(engine)
    with sessions.begin() as session:
        _add(session, 1, 7)
    with sessions.begin() as session:
        assert audit.sweep(session, audit.now(), None, 4) == 3
    with sessions.begin() as session:
        kept = list(session.scalars(select(AuditEntry.target).order_by(AuditEntry.id)))
        assert kept == ["t3", "t4", "t5", "t6", "audit"]  # the newest 4, then the sweep's
        assert audit.sweep(session, audit.now(), None, 10) == 0


@pytest.mark.anyio
async def test_a_running_control_plane_sweeps_periodically(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=None, admin_token="cnt_admin_" + "r" * 30,
        audit_retention_days=30, audit_retention_rows=None, audit_sweep_interval_s=0.2,
        gc_freeze=False,
    )  # fmt: skip
    cp = ControlPlane(settings, live=MemoryLiveState(), migrate=True)
    await cp.start()
    try:
        await cp.run_sync(_add, 90, 5)  # old entries appear after the first sweep
        for _ in range(100):
            if cp.retention.removed >= 5:
                break
            await asyncio.sleep(0.1)
        count = await cp.run_sync(
            lambda s: s.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "x")
            )
        )
        assert cp.retention.removed == 5 and count == 0
    finally:
        await cp.stop()
