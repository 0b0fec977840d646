"""The desired-state owner: long polls answered when their agent has news, deliveries
recorded, and what other replicas decided taken from the event bus."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from orchestrator import fleet as fleet_module
from orchestrator.desired import compute
from tests.orchestrator.harness import Harness

pytestmark = pytest.mark.anyio
WAIT_S = 60.0  # longer than any test: a poll without news is still waiting when checked


async def test_a_rollout_answers_the_long_polls_of_its_targets_only(fleet: Harness) -> None:
    await fleet.enroll("edge-2")  # no link to anyone: never hosts anything
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await fleet.planner.request("a deployment", wait=True)
    first = fleet.owner.revision
    # Every agent now holds `first` (as its long poll answered it).
    states = {d: await fleet.owner.wait(d, -1, 0.0) for d in ("cam-1", "edge-1", "edge-2")}
    assert {s["version"] for s in states.values()} == {first}
    fleet.deliveries.clear()
    polls = {
        d: asyncio.create_task(fleet.owner.wait(d, first, WAIT_S))
        for d in ("cam-1", "edge-1", "edge-2")
    }
    await asyncio.sleep(0)  # every poll is waiting on its channel
    await fleet.deploy("count", model="cnn", source="cam-1", rate_rps=2.0)
    await fleet.planner.request("another deployment", wait=True)
    (_, started) = fleet.desired.rollouts
    assert "edge-2" not in started.devices
    answered = [polls[d] for d in started.devices]
    done, _ = await asyncio.wait(answered, timeout=WAIT_S)
    assert done == set(answered)
    for device in started.devices:
        state = polls[device].result()
        assert state["version"] == started.revision == fleet.owner.revision
        assert state == (await fleet.owner.current()).states[device]
    # The rollout's acknowledgement: each answered agent got the new revision.
    assert sorted(fleet.deliveries) == sorted((d, started.revision) for d in started.devices)
    assert ("delivery", {"device_id": started.devices[0], "revision": started.revision}) in [
        (kind, {k: v for k, v in data.items() if k != "at"}) for kind, data in fleet.events
    ]
    # edge-2 has no news: its poll still waits (until WAIT_S).
    assert not polls["edge-2"].done()
    assert not fleet.owner.news("edge-2", first)
    polls["edge-2"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await polls["edge-2"]


async def test_an_agent_behind_or_on_an_unknown_revision_is_answered_at_once(
    fleet: Harness,
) -> None:
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await fleet.planner.request("a deployment", wait=True)
    revision = fleet.owner.revision
    # A revision this replica never served (another replica's, before a restart) is news.
    state = await fleet.owner.wait("edge-1", revision - 1, WAIT_S)
    assert state["version"] == revision and compute.hosted_keys(state)
    # An agent the cache has not seen (enrolled since) gets its (empty) state from SQL.
    late = await fleet.enroll("edge-9")
    state = await fleet.owner.of(late)
    assert state["device_id"] == late and state["partitions"] == []


async def test_what_other_replicas_decided_arrives_through_events(harness: Harness) -> None:
    owner = harness.owner
    assert (owner.revision, owner.live_revision, owner.plan_version) == (0, 0, 0)
    await owner.on_event("placement", {"version": 4, "in_force": True})
    await owner.on_event("placement", {"version": 9, "in_force": False})  # kept, not applied
    assert owner.plan_version == 4
    await owner.on_event("rollout", {"version": 4, "revision": 12, "state": "switching"})
    await owner.on_event("rollout", {"version": 4, "revision": 12, "state": "live",
                                     "live_version": 12})  # fmt: skip
    assert (owner.revision, owner.live_revision) == (12, 12)
    await owner.on_event("rollout", {"version": 3, "revision": 11, "state": "loading"})
    assert owner.revision == 12  # never back
    # A rollback names no plan version: the one in force is read again (none here).
    await owner.on_event("rollout", {"version": 4, "revision": 13, "state": "rolled_back"})
    assert (owner.revision, owner.plan_version) == (13, 0)


async def test_agents_new_to_the_cache_share_one_refresh(
    fleet: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 newly enrolled agents, each long-polling, once queued a whole recomputation
    each on the SQL threads (heartbeats timed out behind them: bench/soak.py)."""
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await fleet.planner.request("a deployment", wait=True)
    await fleet.owner.current()
    idle = [await fleet.enroll(f"idle-{k}") for k in range(30)]
    counts = {"compute": 0, "get_device": 0}

    def counted(name: str, real: Any) -> Any:
        def call(*args: Any) -> Any:
            counts[name] += 1
            return real(*args)

        return call

    real_compute = compute.compute

    def first_waits(*args: Any) -> Any:
        # The first recomputation runs until every agent has asked SQL about itself (and
        # a moment more for each to ask for the refresh), as a fleet's arrivals overlap a
        # slow one; arrivals spread over several recomputations would each begin one more,
        # which is right (a forced read begins after its caller asked) but not this test.
        if counts["compute"] == 1:
            deadline = time.monotonic() + 10
            while counts["get_device"] < len(idle) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)
        return real_compute(*args)

    monkeypatch.setattr(compute, "compute", counted("compute", first_waits))
    monkeypatch.setattr(fleet_module, "get_device", counted("get_device", fleet_module.get_device))
    states = await asyncio.gather(*(fleet.owner.of(d) for d in idle))
    revision = fleet.owner.revision
    assert [s["device_id"] for s in states] == idle
    assert all(s["partitions"] == [] and s["version"] == revision for s in states)
    assert set(idle) <= set((await fleet.owner.current()).states)
    # Each asked SQL whether it exists; the recomputation was shared (one queued behind
    # one that may have been running).
    assert counts["get_device"] == len(idle)
    assert 1 <= counts["compute"] <= 2
    counts.update(compute=0, get_device=0)
    again = await asyncio.gather(*(fleet.owner.of(d) for d in idle))
    assert again == states
    assert counts == {"compute": 0, "get_device": 0}
    # A known device is served from the cache, and a new one is still looked up.
    in_plan = (await fleet.owner.current()).states
    assert await fleet.owner.of("cam-1") == in_plan["cam-1"]
    late = await fleet.enroll("idle-late")
    assert (await fleet.owner.of(late))["device_id"] == late
    assert counts["get_device"] == 1
