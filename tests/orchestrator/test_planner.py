"""The planner's lease across replicas, on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.live.redis import RedisLiveState
from orchestrator.planner import LOCK, Outcome, Planner

pytestmark = pytest.mark.anyio
TTL_S = 0.6


@pytest.fixture
async def live(redis_url: str, live_prefix: str) -> AsyncIterator[RedisLiveState]:
    state = RedisLiveState(redis_url, prefix=live_prefix)
    try:
        yield state
    finally:
        await state.close()


class SlowPlanner(Planner):
    """A solve that outlasts the lease several times over."""

    solve_s = 4 * TTL_S

    async def solve(self, *args: Any, **kwargs: Any) -> Outcome:
        await asyncio.sleep(self.solve_s)
        return Outcome(scenario={}, plan=None)


async def test_the_lease_is_renewed_through_a_long_solve_and_stays_short(
    live: RedisLiveState,
) -> None:
    cp = SimpleNamespace(live=live, settings=SimpleNamespace(leader_ttl_s=TTL_S))
    planner = SlowPlanner(cp, executor=lambda: None)  # type: ignore[arg-type]
    solving = asyncio.create_task(planner._locked_solve("test", None))
    await asyncio.sleep(0.1)
    key = f"{live._prefix}lock:{LOCK}"
    leases = []
    while not solving.done():
        # Another replica never gets the lock while the solve runs...
        assert not await live.acquire(LOCK, "other-replica", TTL_S)
        # ...and a holder that dies frees it within one lease, not a solver time limit.
        leases.append(await live._redis.pttl(key))
        await asyncio.sleep(TTL_S / 4)
    await solving
    assert len(leases) >= 8 and all(0 < ms <= TTL_S * 1000 for ms in leases), leases
    assert await live.acquire(LOCK, "other-replica", TTL_S)  # released at the end
