"""The Redis live state across a restart of Redis itself: connections pooled before it
are dead, and the first command on each must be sent again on a fresh one, not fail (an
API request failed 503 on one with Redis already back, issue 18's Redis-restart test)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.live.redis import RedisLiveState
from tests.harness.faults import PrivateRedis
from tests.harness.processes import Launcher

pytestmark = pytest.mark.anyio
POOLED = 8


@pytest.fixture
def private_redis(tmp_path: Path, processes: Launcher) -> Iterator[PrivateRedis]:
    yield PrivateRedis(processes, tmp_path / "redis.log")


async def test_connections_pooled_before_a_restart_are_replaced_not_failed(
    private_redis: PrivateRedis,
) -> None:
    live = RedisLiveState(private_redis.url, prefix="restart:")
    try:
        # Several commands at once: as many connections in the pool, all from before.
        await asyncio.gather(*(live.put_heartbeat(f"d{k}", {"n": 1}, 30) for k in range(POOLED)))
        assert await live.acquire("lock", "me", 30)
        await asyncio.to_thread(private_redis.restart, 0.3)  # every key and socket gone
        # Each pooled connection is used again at once: none may surface its death.
        await asyncio.gather(*(live.put_heartbeat(f"d{k}", {"n": 2}, 30) for k in range(POOLED)))
        beats = await live.heartbeats()
        assert {d: b["n"] for d, b in beats.items()} == {f"d{k}": 2 for k in range(POOLED)}
        assert await live.acquire("lock", "me", 30)
    finally:
        await live.close()
