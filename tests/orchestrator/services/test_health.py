"""The health service: readiness names what does not answer; metrics render."""

from __future__ import annotations

import pytest

from orchestrator.db import session_factory
from orchestrator.db.engine import create_url_engine
from orchestrator.live.redis import RedisLiveState
from orchestrator.services.health import HealthService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio

DEAD_PORT = 9  # discard: nothing listens there


async def test_ready_when_both_answer(ctx: Harness) -> None:
    assert await HealthService(ctx).readiness() == {"database": True, "live_state": True}


async def test_a_database_that_does_not_answer_is_named(ctx: Harness) -> None:
    # A port nothing listens on: the connection is refused at once.
    engine = create_url_engine(f"postgresql+psycopg://postgres@127.0.0.1:{DEAD_PORT}/none")
    answering, ctx.sessions = ctx.sessions, session_factory(engine)
    try:
        checks = await HealthService(ctx).readiness()
    finally:
        ctx.sessions = answering
        engine.dispose()
    assert checks == {"database": False, "live_state": True}


async def test_a_live_state_that_does_not_answer_is_named(ctx: Harness) -> None:
    dead = RedisLiveState(f"redis://127.0.0.1:{DEAD_PORT}/0", prefix="continuum-test:dead:")
    answering, ctx.live = ctx.live, dead
    try:
        checks = await HealthService(ctx).readiness()
    finally:
        ctx.live = answering
        await dead.close()
    assert checks == {"database": True, "live_state": False}


async def test_metrics_render_in_prometheus_text(ctx: Harness) -> None:
    ctx.metrics.heartbeats.inc(3)
    text = HealthService(ctx).metrics_text().decode()
    assert "continuum_heartbeats_total 3.0" in text
