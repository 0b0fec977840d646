"""The loop's gateway on the real pieces, through the in-memory harness: a rollout's
switch, its settling, and its rollback, each published through the desired-state owner."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import rollouts
from orchestrator.desired import compute
from orchestrator.rollouts import RolloutView
from tests.orchestrator.harness import Harness

pytestmark = pytest.mark.anyio


async def _active(harness: Harness) -> RolloutView:
    view = await harness.run_sync(rollouts.active)
    assert view is not None
    return view


async def _served_is_sql(harness: Harness) -> dict[str, dict[str, Any]]:
    """What the owner serves, checked against what SQL gives at the same revision."""
    served = await harness.owner.current()
    revision, states, _ = await harness.run_sync(compute.compute, "http://cp.test")
    assert (served.version, served.states) == (revision, states)
    return states


async def _first_plan_live(harness: Harness) -> int:
    await harness.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await harness.planner.request("a deployment", wait=True)
    loading = await _active(harness)
    await harness.gateway.switch(loading)
    await harness.gateway.settle(await _active(harness))
    assert await harness.run_sync(rollouts.active) is None
    return loading.plan_version


async def test_a_switch_serves_the_new_plan_alone_and_settling_makes_it_live(
    fleet: Harness,
) -> None:
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await fleet.planner.request("a deployment", wait=True)
    loading = await _active(fleet)
    (started,) = fleet.desired.rollouts
    assert started.staged is not None
    await fleet.gateway.switch(loading)
    switching = await _active(fleet)
    assert switching.state == "switching" and switching.revision > loading.revision
    assert fleet.owner.revision == switching.revision
    assert fleet.events[-1] == ("rollout", {"version": loading.plan_version,
                                            "revision": switching.revision,
                                            "state": "switching"})  # fmt: skip
    # The states the commit computed for the switch, now at the switch's revision, and
    # exactly what SQL gives: the source's route switched to the new plan.
    states = await _served_is_sql(fleet)
    for device, state in started.staged.switched.items():
        assert {**state, "version": switching.revision} == states[device]
    assert states["cam-1"]["sources"][0]["deployment"] == "detect"
    assert fleet.owner.live_revision < switching.revision
    await fleet.gateway.settle(switching)
    assert fleet.owner.live_revision == switching.revision
    assert await fleet.run_sync(rollouts.active) is None


async def test_a_change_after_the_commit_drops_the_states_stashed_for_the_switch(
    fleet: Harness,
) -> None:
    await fleet.deploy("detect", model="cnn", source="cam-1", rate_rps=5.0)
    await fleet.planner.request("a deployment", wait=True)
    loading = await _active(fleet)
    # edge-1 re-enrolls with another data-plane URL before the switch (as
    # services.agents does, it invalidates desired states): its stashed states are stale.
    await fleet.enroll("edge-1", data_plane_url="http://edge-1.moved:9000")
    fleet.owner.invalidate()
    await fleet.gateway.switch(loading)
    states = await _served_is_sql(fleet)
    (hop,) = [s["first_hop"] for s in states["cam-1"]["sources"]]
    assert hop["data_plane_url"] == "http://edge-1.moved:9000"


async def test_a_rollback_puts_the_previous_plan_back_in_force(fleet: Harness) -> None:
    first = await _first_plan_live(fleet)
    await fleet.deploy("count", model="cnn", source="cam-1", rate_rps=2.0)
    await fleet.planner.request("another deployment", wait=True)
    loading = await _active(fleet)
    assert loading.plan_version > first and loading.from_version == first
    before = await _served_is_sql(fleet)
    assert any(k.startswith("count/") for s in before.values() for k in compute.hosted_keys(s))
    await fleet.gateway.roll_back(loading, "loading took too long")
    assert [t.kind for t in fleet.triggers] == ["rollout-timeout"]
    in_force = await fleet.run_sync(compute.in_force)
    assert in_force is not None and in_force.version == first
    assert fleet.owner.plan_version == first  # learnt from the `rolled_back` event
    rolled_back = await _active(fleet)  # not settled yet: the loop still needs it
    assert rolled_back.state == "rolled_back" and fleet.owner.revision == rolled_back.revision
    states = await _served_is_sql(fleet)
    keys = {k for s in states.values() for k in compute.hosted_keys(s)}
    assert keys and all(k.startswith("detect/") for k in keys)
    await fleet.gateway.settle(rolled_back)
    assert fleet.owner.live_revision == rolled_back.revision
