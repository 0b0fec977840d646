"""Fixtures of the orchestrator's tests.

`pg_url`, `redis_url` and `live_prefix` live in `tests/harness/fixtures.py`, a plugin loaded by
`tests/conftest.py`, so that the CLI and API tests can use them too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import degrade
from orchestrator.live.base import LiveState
from orchestrator.live.memory import MemoryLiveState
from orchestrator.live.redis import RedisLiveState
from tests.api.conftest import small_cnn
from tests.orchestrator.harness import Harness, camera_and_edge, close_harness, open_harness


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


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """The planner, the desired-state owner and the loop's gateway in memory, on SQLite."""
    opened = await open_harness(tmp_path)
    try:
        yield opened
    finally:
        await close_harness(opened)


@pytest.fixture
async def fleet(harness: Harness) -> Harness:
    """The harness with cam-1, edge-1, a link between them and the small CNN."""
    await camera_and_edge(harness, small_cnn())
    return harness


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The apps `orchestrator.degrade`'s relaxed search is run for, in order, while the
    test runs (the search itself unchanged)."""
    out: list[str] = []
    search = degrade._relaxed_placement

    def counting(*args: Any, **kwargs: Any) -> Any:
        out.append(args[4])
        return search(*args, **kwargs)

    monkeypatch.setattr(degrade, "_relaxed_placement", counting)
    return out
