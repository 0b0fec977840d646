"""Fixtures of the orchestrator's tests.

`pg_url`, `redis_url` and `live_prefix` live in `tests/harness/fixtures.py`, a plugin loaded by
`tests/conftest.py`, so that the CLI and API tests can use them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from orchestrator.live.base import LiveState
from orchestrator.live.memory import MemoryLiveState
from orchestrator.live.redis import RedisLiveState


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def live(request: pytest.FixtureRequest, live_prefix: str) -> AsyncIterator[LiveState]:
    """Each live-state backend in turn: in-process, and a real Redis under a fresh prefix."""
    state: LiveState
    if request.param == "memory":
        state = MemoryLiveState()
    else:
        state = RedisLiveState(request.getfixturevalue("redis_url"), prefix=live_prefix)
    try:
        yield state
    finally:
        await state.close()
