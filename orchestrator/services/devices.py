"""Devices as operators see them: their declared figures beside their last heartbeat;
updates, cordon/drain/uncordon and deletion, each audited and followed by a re-solve."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from orchestrator import fleet
from orchestrator.carbon.devices import DECLARABLE, CarbonInput, resolve, spec_from_json
from orchestrator.db.tables import Device
from orchestrator.power import planned_power
from orchestrator.services.context import Context

# What in an update touches carbon: re-resolved together (orchestrator/carbon/devices.py).
_CARBON_KEYS = {"zone", "carbon", *DECLARABLE}


class DevicesService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def views(self) -> list[dict[str, Any]]:
        devices = await self._ctx.run_sync(fleet.list_devices)
        beats = await self._ctx.live.heartbeats()
        return [device_view(d, beats.get(d.id)) for d in devices]

    async def view(self, device_id: str) -> dict[str, Any]:
        device = await self._ctx.run_sync(fleet.get_device, device_id)
        return device_view(device, await self._ctx.live.heartbeat(device_id))

    async def update(self, actor: str, device_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Labels, power and carbon figures, battery, compute and memory; returns the view."""
        if _CARBON_KEYS & changes.keys():
            device = await self._ctx.run_sync(fleet.get_device, device_id)
            given = carbon_input(device, changes)
            # Boavizta's worker blocks (seconds on first use): off the event loop.
            columns = await asyncio.to_thread(resolve, self._ctx.boavizta, given)
            changes["carbon_columns"] = columns
        await self._ctx.run_sync(fleet.update_device, actor, device_id, changes)
        await self._ctx.events.publish("device", {"device_id": device_id, "change": "updated"})
        await self._ctx.record_trigger(
            "device-changed",
            device_id,
            f"device {device_id} updated by {actor}",
            time.time(),
            replan=True,
        )
        return await self.view(device_id)

    async def set_state(self, actor: str, device_id: str, state: str) -> dict[str, Any]:
        """active, cordoned or draining; returns the view."""
        await self._ctx.run_sync(fleet.set_device_state, actor, device_id, state)
        await self._ctx.events.publish("device", {"device_id": device_id, "change": state})
        await self._ctx.record_trigger(
            f"device-{state}",
            device_id,
            f"device {device_id} set {state} by {actor}",
            time.time(),
            replan=True,
        )
        return await self.view(device_id)

    async def rekey(self, actor: str, device_id: str) -> dict[str, Any]:
        """Allow one re-enrollment without the device's agent token; returns the view."""
        await self._ctx.run_sync(fleet.rekey_device, actor, device_id)
        await self._ctx.events.publish("device", {"device_id": device_id, "change": "rekey"})
        return await self.view(device_id)

    async def delete(self, actor: str, device_id: str) -> None:
        """The device, its declared links and its live state; its agent token dies at once."""
        await self._ctx.run_sync(fleet.delete_device, actor, device_id)
        await self._ctx.live.forget(device_id)
        self._ctx.invalidate_desired()
        await self._ctx.events.publish("device", {"device_id": device_id, "change": "deleted"})
        self._ctx.forget_agent(device_id)
        await self._ctx.request_replan(f"device {device_id} deleted by {actor}")


def carbon_input(device: Device, changes: dict[str, Any]) -> CarbonInput:
    """The device's carbon sources after `changes` (whose carbon keys it takes out); an
    explicit None clears one."""
    declared = {
        "embodied_kgco2e": device.embodied_declared_kgco2e,
        "lifetime_h": device.lifetime_declared_h,
        "grid_gco2_per_kwh": device.grid_declared_gco2_per_kwh,
    }
    for key in DECLARABLE:
        if key in changes:
            declared[key] = changes.pop(key)
    zone = changes.pop("zone") if "zone" in changes else device.zone
    spec = changes.pop("carbon") if "carbon" in changes else device.carbon_spec
    power_set = changes.get("power_w") is not None
    return CarbonInput(
        tier=device.tier,
        zone=zone,
        spec=spec_from_json(spec),
        power_from_profile=device.power_provenance == "profile" and not power_set,
        **declared,
    )


def _carbon_view(device: Device) -> dict[str, Any]:
    return {
        "zone": device.zone,
        "spec": device.carbon_spec,
        "declared": {
            "embodied_kgco2e": device.embodied_declared_kgco2e,
            "lifetime_h": device.lifetime_declared_h,
            "grid_gco2_per_kwh": device.grid_declared_gco2_per_kwh,
        },
        "derived": {
            "embodied_kgco2e": device.embodied_derived_kgco2e,
            "lifetime_h": device.lifetime_derived_h,
            "grid_gco2_per_kwh": device.grid_derived_gco2_per_kwh,
        },
        "embodied_provenance": device.embodied_provenance or "declared",
        "power_provenance": device.power_provenance or "declared",
        "inventory": device.inventory,
    }


def device_view(device: Device, beat: dict[str, Any] | None) -> dict[str, Any]:
    """A device row and its last heartbeat (None: not alive) as the API's DeviceView."""
    battery = None
    if device.battery_capacity_wh is not None:
        battery = {
            "capacity_wh": device.battery_capacity_wh,
            "min_pct": device.battery_min_pct,
            "level_pct": (beat or {}).get("battery_pct"),
        }
    declared = {"idle": device.power_idle_w, "busy": device.power_busy_w}
    planned, provenance = planned_power(declared, beat)
    if beat is None:
        provenance = device.power_provenance  # not alive: as last reported
    report = (beat or {}).get("power") or {}
    return {
        "id": device.id,
        "name": device.name,
        "tier": device.tier,
        "gflops": device.gflops,
        "memory_mb": device.memory_mb,
        "power_w": {"idle": device.power_idle_w, "busy": device.power_busy_w},
        "power_planned_w": planned,
        "power_provenance": provenance,
        "power_measured_w": report.get("watts"),
        "power_source": report.get("source") or None,
        "battery": battery,
        "grid_gco2_per_kwh": device.grid_gco2_per_kwh,
        "embodied_kgco2e": device.embodied_kgco2e,
        "lifetime_h": device.lifetime_h,
        "labels": device.labels,
        "data_plane_url": device.data_plane_url,
        "emulated": device.emulated,
        "state": device.state,
        "rekey_pending": device.rekey_at is not None,
        "alive": beat is not None,
        "last_heartbeat": beat,
        "created_at": device.created_at.isoformat(),
        "carbon": _carbon_view(device),
    }
