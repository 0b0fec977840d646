"""The scenario the control plane solves, from what SQL says and what the agents report."""

from __future__ import annotations

from typing import Any

from orchestrator.scenario_builder import Snapshot, build

PLACEMENT = {
    "energy": 1.0,
    "carbon": 0.0,
    "latency": 0.0,
    "migration": 0.0,
    "horizon_h": 8.0,
    "max_utilization": 0.8,
    "hysteresis": 0.05,
}


def _camera(**fields: Any) -> dict[str, Any]:
    return {
        "id": "cam",
        "tier": "device",
        "gflops": 5.0,
        "memory_mb": 512.0,
        "power_w": {"idle": 1.0, "busy": 4.0},
        "battery_capacity_wh": 10.0,
        "battery_min_pct": 20.0,
        "grid_gco2_per_kwh": 300.0,
        "embodied_kgco2e": 20.0,
        "lifetime_h": 26280.0,
        "state": "active",
        **fields,
    }


def test_a_charging_device_is_planned_as_mains_powered() -> None:
    snap = Snapshot(devices=[_camera()], placement=PLACEMENT)
    on_battery = build(snap, {"cam": {"battery_pct": 55.0, "charging": False}}, {})
    (device,) = on_battery.scenario["devices"]
    assert device["battery"] == {"capacity_wh": 10.0, "level_pct": 55.0, "min_pct": 20.0}
    plugged = build(snap, {"cam": {"battery_pct": 55.0, "charging": True}}, {})
    (device,) = plugged.scenario["devices"]
    assert "battery" not in device
    unknown = build(snap, {"cam": {"battery_pct": 55.0}}, {})  # an agent that cannot tell
    assert unknown.scenario["devices"][0]["battery"]["level_pct"] == 55.0
