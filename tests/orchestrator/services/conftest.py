"""The services' fixture: a `Harness` over each database and live-state pair in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.db import migrate
from orchestrator.live.base import LiveState
from orchestrator.live.memory import MemoryLiveState
from orchestrator.live.redis import RedisLiveState
from orchestrator.settings import Settings
from tests.orchestrator.services.harness import Harness


@pytest.fixture(params=["sqlite+memory", "postgres+redis"])
async def ctx(
    request: pytest.FixtureRequest, tmp_path: Path, live_prefix: str
) -> AsyncIterator[Harness]:
    """A started harness on a migrated, empty database."""
    postgres = request.param.startswith("postgres")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=request.getfixturevalue("fresh_pg") if postgres else None,
        admin_token="cnt_admin_services-test",
        enrollment_token_ttl_s=600,
        max_upload_mb=1.0,
    )
    live: LiveState
    if request.param.endswith("redis"):
        live = RedisLiveState(request.getfixturevalue("redis_url"), prefix=live_prefix)
    else:
        live = MemoryLiveState()
    if settings.embedded:
        settings.data_dir.mkdir(parents=True)
    migrate.upgrade(settings.sqlalchemy_url)
    harness = Harness(settings, live)
    await harness.events.start()
    try:
        yield harness
    finally:
        await harness.close()
