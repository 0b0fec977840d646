"""The devices service: views join rows with heartbeats; every change is audited, and
what it asks of the planner and the caches is what the harness recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import audit, fleet
from orchestrator.errors import Invalid, NotFound
from orchestrator.services.devices import DevicesService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio


async def _actions(ctx: Harness) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.target) for e in await ctx.run_sync(audit.recent, 100)]


async def _next_event(events: Any, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await asyncio.wait_for(events.get(), timeout=10)
        if message["type"] == kind:
            return message


async def test_views_show_a_device_alive_while_it_has_a_heartbeat(ctx: Harness) -> None:
    await ctx.enroll("cam-1", battery={"capacity_wh": 10.0, "min_pct": 25.0})
    await ctx.enroll("edge-1")
    devices = DevicesService(ctx)
    assert [(d["id"], d["alive"]) for d in await devices.views()] == [
        ("cam-1", False),
        ("edge-1", False),
    ]
    await ctx.live.put_heartbeat("cam-1", {"battery_pct": 71.5, "at": 1.0}, 60.0)
    cam = await devices.view("cam-1")
    assert cam["alive"] is True
    assert cam["battery"] == {"capacity_wh": 10.0, "min_pct": 25.0, "level_pct": 71.5}
    assert cam["last_heartbeat"]["battery_pct"] == 71.5
    edge = await devices.view("edge-1")
    assert edge["alive"] is False and edge["battery"] is None
    assert edge["power_w"] == {"idle": 10.0, "busy": 40.0}


async def test_an_unknown_device_is_not_found(ctx: Harness) -> None:
    with pytest.raises(NotFound, match="no device 'ghost'"):
        await DevicesService(ctx).view("ghost")


async def test_update_is_audited_announced_and_triggers_a_replan(ctx: Harness) -> None:
    await ctx.enroll("edge-1")
    async with ctx.events.subscribe() as events:
        view = await DevicesService(ctx).update(
            "operator:ops", "edge-1", {"labels": {"zone": "a"}, "gflops": 150.0}
        )
        announced = await _next_event(events, "device")
    assert view["labels"] == {"zone": "a"} and view["gflops"] == 150.0
    assert announced["data"] == {"device_id": "edge-1", "change": "updated"}
    assert ("operator:ops", "device.updated", "device:edge-1") in await _actions(ctx)
    (trigger,) = ctx.triggers
    assert (trigger.kind, trigger.target, trigger.replan) == ("device-changed", "edge-1", True)
    assert trigger.reason == "device edge-1 updated by operator:ops"


@pytest.mark.parametrize(
    ("state", "action"),
    [("cordoned", "device.cordoned"), ("draining", "device.draining"),
     ("active", "device.uncordoned")],
)  # fmt: skip
async def test_set_state(ctx: Harness, state: str, action: str) -> None:
    await ctx.enroll("edge-1")
    view = await DevicesService(ctx).set_state("operator:ops", "edge-1", state)
    assert view["state"] == state
    assert ("operator:ops", action, "device:edge-1") in await _actions(ctx)
    assert [(t.kind, t.replan) for t in ctx.triggers] == [(f"device-{state}", True)]


async def test_an_unknown_state_is_refused_and_nothing_changes(ctx: Harness) -> None:
    await ctx.enroll("edge-1")
    devices = DevicesService(ctx)
    with pytest.raises(Invalid, match="state: must be one of active, cordoned, draining"):
        await devices.set_state("operator:ops", "edge-1", "asleep")
    assert (await devices.view("edge-1"))["state"] == "active"
    assert ctx.triggers == [] and ctx.replans == []


async def test_delete_removes_the_device_its_links_and_its_live_state(ctx: Harness) -> None:
    await ctx.enroll("cam-1")
    await ctx.enroll("edge-1")
    spec = {"a": "cam-1", "b": "edge-1", "mbps": 50.0, "rtt_ms": 4.0}
    await ctx.run_sync(fleet.declare_link, "operator:ops", spec)
    await ctx.live.put_heartbeat("cam-1", {"at": 1.0}, 60.0)
    devices = DevicesService(ctx)
    await devices.delete("operator:ops", "cam-1")
    with pytest.raises(NotFound):
        await devices.view("cam-1")
    assert await ctx.live.heartbeat("cam-1") is None
    assert await ctx.run_sync(fleet.list_links) == []
    assert ctx.forgotten == ["cam-1"] and ctx.invalidations == 1
    assert [r.reason for r in ctx.replans] == ["device cam-1 deleted by operator:ops"]
    assert ("operator:ops", "device.deleted", "device:cam-1") in await _actions(ctx)


async def test_deleting_an_unknown_device_changes_nothing(ctx: Harness) -> None:
    with pytest.raises(NotFound):
        await DevicesService(ctx).delete("operator:ops", "ghost")
    assert ctx.forgotten == [] and ctx.invalidations == 0 and ctx.replans == []
