"""`fleet.ensure_admin_key` when control-plane replicas start together on one database:
every concurrent call succeeds and exactly one key is left, on SQLite and on PostgreSQL.
(A look-up then an insert let several callers find nothing and all insert; the commits
after the first failed on the unique hash, and a replica exited at start.)"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from orchestrator import fleet, tokens
from orchestrator.db import migrate
from orchestrator.db.engine import create_url_engine, session_factory
from orchestrator.db.tables import ApiKey

CALLERS = 8  # replicas starting at once
ROUNDS = 5  # each with a token not yet registered


@pytest.mark.parametrize("db", ["sqlite", "postgres"])
def test_concurrent_ensures_all_succeed_and_leave_one_key(
    db: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("fresh_pg") if db == "postgres"
        else f"sqlite:///{tmp_path / 'continuum.db'}"
    )  # fmt: skip
    migrate.upgrade(url)
    engine = create_url_engine(url)
    sessions = session_factory(engine)
    try:
        for n in range(ROUNDS):
            token = f"ctm_admin_{n}_{db}"
            start = threading.Barrier(CALLERS)

            def ensure(token: str = token, start: threading.Barrier = start) -> None:
                with sessions.begin() as session:
                    start.wait(timeout=60)  # every caller's transaction open, then all go
                    fleet.ensure_admin_key(session, token)

            with ThreadPoolExecutor(CALLERS) as pool:
                calls = [pool.submit(ensure) for _ in range(CALLERS)]
                errors = [repr(call.exception(timeout=120)) for call in calls]
            assert errors == [repr(None)] * CALLERS, f"round {n}: {errors}"
            with sessions() as session:
                keys = session.scalars(
                    select(ApiKey).where(ApiKey.token_hash == tokens.hash_token(token))
                ).all()
                assert [(k.name, k.role, k.revoked_at) for k in keys] == [("admin", "admin", None)]
        with sessions() as session:  # one key per token, nothing else
            assert len(session.scalars(select(ApiKey)).all()) == ROUNDS
        # Once registered, ensuring it again is a no-op.
        with sessions.begin() as session:
            fleet.ensure_admin_key(session, f"ctm_admin_0_{db}")
        with sessions() as session:
            assert len(session.scalars(select(ApiKey)).all()) == ROUNDS
    finally:
        engine.dispose()
