"""The loop's gateway on the real pieces, through the in-memory harness: a rollout's
switch, its settling, and its rollback, each published through the desired-state owner;
a sustained prediction error re-planning on calibrated inputs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator import rollouts
from orchestrator.calibration import calibrated_gflops, timings
from orchestrator.carbon.grid import GridWatch
from orchestrator.carbon.live import GridNow
from orchestrator.db.tables import Device, PlanVersion
from orchestrator.desired import compute
from orchestrator.live import LiveState
from orchestrator.plan_versions import parse_apps
from orchestrator.reconcile import LoopConfig, Reconciler
from orchestrator.reconcile_gateway import ReconcileGateway, _device_meta
from orchestrator.rollouts import RolloutView
from orchestrator.triggers import Trigger, link_name
from tests.api.conftest import small_cnn
from tests.orchestrator.harness import (
    Harness,
    camera_and_edge,
    close_harness,
    open_harness,
)
from tests.orchestrator.test_reconcile import FakeMetrics

pytestmark = pytest.mark.anyio
T = TypeVar("T")


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


async def test_the_observation_carries_the_floors_of_the_plan_in_force(fleet: Harness) -> None:
    """What the plan in force sends over each link, over the cap: the figure below which
    the loop's link watch fires (tests/orchestrator/test_triggers.py); the camera's app
    has no SLO, so no SLO raises it (tests/orchestrator/test_floors.py). And what a fall
    on each costs the plan, for the watch to judge a fall above the floor by."""
    assert (await fleet.gateway.observe()).link_floors == {}
    assert (await fleet.gateway.observe()).link_costs is None
    await _first_plan_live(fleet)
    for summary in fleet.announced:  # as the event bus hands the planner's news back
        await fleet.owner.on_event("placement", summary)
    row = await fleet.run_sync(_in_force)
    obs = await fleet.gateway.observe()
    floors = obs.link_floors
    assert obs.link_costs is not None and obs.link_costs.solved.keys() == floors.keys()
    assert obs.link_costs.objective == row.plan["objective"]
    used = [lk for lk in row.plan["links"] if lk["utilization"] > 0]
    assert used, "the camera's plan sends nothing over its link"
    declared = {link_name(lk["a"], lk["b"]): lk["mbps"] for lk in row.scenario["links"]}
    cap = row.scenario.get("max_utilization", 0.8)
    assert floors == {
        link_name(lk["a"], lk["b"]): lk["utilization"] * declared[link_name(lk["a"], lk["b"])] / cap
        for lk in used
    }


def _second_gateway(
    fleet: Harness, run_sync: Callable[..., Any], grid: GridNow | None = None
) -> ReconcileGateway:
    """Another gateway on the harness's pieces (a new leader's, or one with its own reads)."""
    return ReconcileGateway(
        fleet.live, run_sync, fleet.owner, record_trigger=fleet.record_trigger,
        request_replan=fleet.planner.request, publish=fleet.publish, grid=grid,
    )  # fmt: skip


def _set_zone(session: Session, device: str, zone: str, grid: float | None = None) -> None:
    row = session.get(Device, device)
    assert row is not None
    row.zone = zone
    if grid is not None:
        row.grid_gco2_per_kwh = grid


async def test_a_device_read_in_flight_across_a_device_event_is_not_kept(
    fleet: Harness,
) -> None:
    """A zone set while the loop's read of the devices was in flight: that read is stale
    and is not cached, so the next observation sees the zone (kept, it hid the zone from
    the grid watch until some other device event: a grid change went unseen)."""
    raced = False

    async def racing(fn: Callable[..., T], *args: Any) -> T:
        nonlocal raced
        out = await fleet.run_sync(fn, *args)
        if fn is _device_meta and not raced:
            raced = True  # the PATCH commits and its event arrives before the read returns
            await fleet.run_sync(_set_zone, "edge-1", "DEU")
            gateway.devices_changed()
        return out

    gateway = _second_gateway(fleet, racing)
    assert (await gateway.observe()).devices["edge-1"]["zone"] is None  # the read in flight
    assert raced
    assert (await gateway.observe()).devices["edge-1"]["zone"] == "DEU"


async def test_a_new_leader_measures_a_grid_change_from_the_plan_in_force(
    fleet: Harness, tmp_path: Path
) -> None:
    """The grid moved after the plan in force was solved, before this gateway's loop took
    the lead: the change is measured from the plan's own figure, not from the first one
    the new leader sees (which would take the moved figure for the baseline)."""
    await fleet.run_sync(_set_zone, "edge-1", "DEU", 400.0)
    await _first_plan_live(fleet)
    row = await fleet.run_sync(_in_force)
    solved = next(d["grid_gco2_per_kwh"] for d in row.scenario["devices"] if d["id"] == "edge-1")
    assert solved == 400.0
    moved = solved / 4
    series = tmp_path / "grid.csv"
    series.write_text(f"time,zone,gco2_per_kwh\n2020-01-01T00:00:00+00:00,DEU,{moved}\n")
    gateway = _second_gateway(fleet, fleet.run_sync, GridNow(series))
    obs = await gateway.observe()
    assert obs.grid == {"DEU": moved}
    assert obs.planned_grid == {"DEU": solved}
    watch = GridWatch()
    watch.solved_with(obs.plan_version, obs.planned_grid)
    fired = watch.observe("DEU", moved, obs.now)
    assert fired is not None and fired.reason == f"grid DEU: {solved:.0f} -> {moved:.0f} gCO2e/kWh"


async def test_a_sustained_prediction_error_replans_on_the_calibrated_inputs(
    fleet: Harness,
) -> None:
    """Partitions measured four times slower than predicted, for several heartbeats: the
    loop's latency trigger fires, and the plan it asks for is solved from a scenario whose
    speeds are the calibrated ones (the inputs change; the same solve again would give the
    same mispredicted plan)."""
    await _first_plan_live(fleet)
    first = await fleet.run_sync(_in_force)
    loop = Reconciler(fleet.gateway, LoopConfig(startup_grace_s=0.0), FakeMetrics())
    predicted = (await fleet.gateway.observe()).predicted_ms
    assert predicted
    hosts = {key: _host(first, key) for key in predicted}
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    seen: dict[str, dict[str, dict[str, Any]]] = {}
    fired = []
    for look in range(6):
        count = 30 * look  # 30 new requests per heartbeat, each 4x the prediction
        for key, ms in predicted.items():
            metrics.setdefault(hosts[key], {})[key] = {
                "requests": count,
                "compute_ms": {"bounds_ms": [], "counts": [], "count": count,
                               "sum_ms": count * 4 * ms},
                "recent_ms": 4 * ms if count else None,
                "recent_count": min(count, 64),
            }  # fmt: skip
        for device in ("cam-1", "edge-1"):
            await fleet.beat(device, at=time.time(), metrics=metrics.get(device, {}))
        now = await loop.tick()
        await fleet.planner.settle()
        if now:
            seen = {d: {k: dict(m) for k, m in ms.items()} for d, ms in metrics.items()}
        fired += now
    assert [t.kind for t in fired] == ["latency"]  # sustained: fired once, not per look
    assert any(t.kind == "latency" for t in fleet.triggers)
    replanned = await fleet.run_sync(_latest)
    assert replanned.version > first.version
    speeds = {d["id"]: d["gflops"] for d in replanned.scenario["devices"]}
    before = {d["id"]: d["gflops"] for d in first.scenario["devices"]}
    for device, beat_metrics in seen.items():  # what the heartbeats said when it fired
        timed = timings(beat_metrics, {m["id"]: m for m in first.scenario["models"]},
                        lambda dep, k: None)  # fmt: skip
        calibrated, _ = calibrated_gflops(before[device], timed)
        assert speeds[device] == calibrated
        assert calibrated < before[device] / 2  # four times slower, the prior fading
    assert replanned.scenario["apps"] == first.scenario["apps"]  # what changed: the inputs


def _in_force(session: Session) -> PlanVersion:
    row = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
    assert row is not None
    session.expunge(row)
    return row


def _latest(session: Session) -> PlanVersion:
    row = session.scalar(select(PlanVersion).order_by(PlanVersion.version.desc()).limit(1))
    assert row is not None
    session.expunge(row)
    return row


def _host(row: PlanVersion, key: str) -> str:
    """The device that serves partition `key` under the plan in `row`."""
    layers = {m["id"]: m["layers"] for m in row.scenario["models"]}
    for app in parse_apps(row.plan):
        index = {b["name"]: k for k, b in enumerate(layers[app.model or ""])}
        for seg in app.segments or []:
            spans = (index[seg.first], index[seg.last])
            if compute.partition_key(app.id, app.model or "", *spans) == key:
                return seg.device
    raise AssertionError(f"no segment serves {key}")


# -- what the leader observes, read incrementally (the gateway's heartbeat mirror) ----------


@pytest.fixture
async def live_fleet(tmp_path: Path, live: LiveState) -> AsyncIterator[Harness]:
    """cam-1 and edge-1 on each live-state backend in turn (in-process, a real Redis), the
    mirror's safety-net full read put off: every read after the first is incremental."""
    harness = await open_harness(tmp_path, live)
    try:
        await camera_and_edge(harness, small_cnn())
        harness.gateway.mirror.full_every_s = 3600.0
        yield harness
    finally:
        await close_harness(harness)


async def _baseline(fleet: Harness, config: LoopConfig) -> Reconciler:
    loop = Reconciler(fleet.gateway, config, FakeMetrics())
    for device in ("cam-1", "edge-1"):
        await fleet.beat(device, at=time.time(), battery_pct=80.0)
    assert await loop.tick() == []  # the first tick is the baseline
    return loop


async def test_the_leader_sees_a_changed_battery_reading_only_that_heartbeat(
    live_fleet: Harness,
) -> None:
    loop = await _baseline(live_fleet, LoopConfig(startup_grace_s=0.0))
    await live_fleet.beat("cam-1", at=time.time(), battery_pct=60.0)
    fired = await loop.tick()
    await live_fleet.planner.settle()
    assert [(t.kind, t.target) for t in fired] == [("battery", "cam-1")]
    assert "battery 60.0%" in fired[0].reason
    mirror = live_fleet.gateway.mirror
    assert mirror.full_reads == 1 and mirror.changed == 1  # cam-1's heartbeat alone


async def test_the_leader_sees_a_changed_link(live_fleet: Harness) -> None:
    loop = await _baseline(live_fleet, LoopConfig(startup_grace_s=0.0))
    await live_fleet.live.put_link("cam-1", "edge-1", 2.0, 4.0, 30.0)
    assert await loop.tick() == []  # the link's first figure: the baseline
    # Two reports of a rise (no plan is in force, so only a move for the better can ask
    # for one): the link's memory moves its estimate at least halfway each (2 -> 21 ->
    # 30.5), and the trigger's own average halfway again.
    for _ in range(2):
        await live_fleet.live.put_link("cam-1", "edge-1", 40.0, 4.0, 30.0)
    fired = await loop.tick()
    await live_fleet.planner.settle()
    assert [(t.kind, t.target) for t in fired] == [("link", "cam-1~edge-1")]
    assert live_fleet.gateway.mirror.full_reads == 1


async def test_the_leader_sees_a_silent_device_lost_by_time_not_by_change(
    live_fleet: Harness,
) -> None:
    """cam-1 stops beating: no change ever names it again, and it is lost all the same
    once `lost_after` passes, while edge-1, beating on, stays."""
    config = LoopConfig(startup_grace_s=0.0, heartbeat_interval_s=0.2, lost_after_intervals=2)
    loop = await _baseline(live_fleet, config)
    lost_after = config.heartbeat_interval_s * config.lost_after_intervals
    fired: list[Trigger] = []
    deadline = time.monotonic() + lost_after + 2.0
    while not fired and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        await live_fleet.beat("edge-1", at=time.time())
        fired = await loop.tick()
    await live_fleet.planner.settle()
    assert [(t.kind, t.target) for t in fired] == [("device-lost", "cam-1")]
    assert "no heartbeat for" in fired[0].reason
    mirror = live_fleet.gateway.mirror
    assert mirror.full_reads == 1 and mirror.changed <= 1  # edge-1's beats only
