"""The scenario the control plane solves, from what SQL says and what the agents report."""

from __future__ import annotations

from typing import Any

import solver
from orchestrator.scenario_builder import Snapshot, build
from solver import parse_scenario

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


def _edge(**fields: Any) -> dict[str, Any]:
    return {
        **_camera(id="edge", tier="edge", gflops=200.0, memory_mb=4096.0),
        "power_w": {"idle": 10.0, "busy": 40.0},
        "battery_capacity_wh": None,
        "battery_min_pct": None,
        **fields,
    }


LINK = {"a": "cam", "b": "edge", "mbps": 50.0, "rtt_ms": 4.0, "j_per_mb": 0.4}
BEATS: dict[str, dict[str, Any]] = {"cam": {"battery_pct": 80.0}, "edge": {}}


def _links(measured: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    snap = Snapshot(devices=[_camera(), _edge()], links=[dict(LINK)], placement=PLACEMENT)
    built = build(snap, BEATS, measured)
    parse_scenario(built.scenario)  # what the solver is handed is a valid scenario-v1
    links: list[dict[str, Any]] = built.scenario["links"]
    return links


def test_a_measured_bandwidth_above_the_declared_one_is_capped_at_it() -> None:
    (link,) = _links({("cam", "edge"): {"mbps": 900.0, "rtt_ms": 0.3}})
    # The declared figure is the link's capacity; the probe's RTT and the declared energy
    # per MB are kept.
    assert link == {**LINK, "mbps": 50.0, "rtt_ms": 0.3}


def test_a_measured_bandwidth_below_the_declared_one_replaces_it() -> None:
    (link,) = _links({("cam", "edge"): {"mbps": 2.0, "rtt_ms": 30.0}})
    assert link == {**LINK, "mbps": 2.0, "rtt_ms": 30.0}


def test_without_a_measurement_the_declared_link_stands() -> None:
    assert _links({}) == [LINK]


def test_a_link_measured_but_never_declared_is_added_at_no_energy_cost() -> None:
    snap = Snapshot(devices=[_camera(), _edge()], placement=PLACEMENT)
    built = build(snap, BEATS, {("cam", "edge"): {"mbps": 20.0, "rtt_ms": 8.0}})
    assert built.scenario["links"] == [
        {"a": "cam", "b": "edge", "mbps": 20.0, "rtt_ms": 8.0, "j_per_mb": 0.0}
    ]
    # A device without a heartbeat is not in the scenario, nor are its links.
    alone = build(snap, {"cam": {}}, {("cam", "edge"): {"mbps": 20.0, "rtt_ms": 8.0}})
    assert [d["id"] for d in alone.scenario["devices"]] == ["cam"]
    assert alone.scenario["links"] == []


def test_a_declared_link_s_stale_measurement_is_remembered_not_the_declared_figure() -> None:
    # The degraded link the plan left: no longer probed every heartbeat, still degraded.
    (link,) = _links({("cam", "edge"): {"mbps": 0.2, "rtt_ms": 30.0, "fresh": False}})
    assert link == {**LINK, "mbps": 0.2, "rtt_ms": 30.0}


def test_an_undeclared_link_is_planned_over_only_while_its_measurement_is_fresh() -> None:
    snap = Snapshot(devices=[_camera(), _edge()], placement=PLACEMENT)
    stale = build(snap, BEATS, {("cam", "edge"): {"mbps": 20.0, "rtt_ms": 8.0, "fresh": False}})
    assert stale.scenario["links"] == []


def _deployment(name: str) -> dict[str, Any]:
    return {"id": name, "model": "m", "source": "cam", "rate_rps": 1.0, "slo_ms": 500.0}


def test_the_plan_in_force_is_carried_into_previous_for_the_apps_still_deployed() -> None:
    segments = [{"device": "cam", "first": "b0", "last": "b1"}]
    result = {"latency_ms": {"worst": 9.0, "expected": 9.0}, "energy_j": 0.1, "carbon_g": 0.0,
              "slo_met": True}  # fmt: skip
    plan = solver.PlanDoc.model_validate(
        {
            "status": "optimal",
            "solver": "ilp",
            "objective": 0.2,
            "bound": 0.2,
            "solve_s": 0.01,
            "apps": [
                {"id": "kept", "model": "m", "segments": segments, "stages": None, **result},
                {"id": "removed", "model": "m", "segments": segments, "stages": None, **result},
            ],
            "devices": [],
            "links": [],
        }
    )
    solved_from = {"version": 1, "devices": []}
    snap = Snapshot(
        devices=[_camera(), _edge()],
        links=[dict(LINK)],
        deployments=[_deployment("kept"), _deployment("new")],
        placement=PLACEMENT,
        plan=plan,
        plan_version=7,
        plan_scenario=solved_from,
    )
    built = build(snap, BEATS, {})
    # Only what the contract's `previous` holds, and only for apps still in the scenario.
    assert built.scenario["previous"] == {
        "apps": [{"id": "kept", "model": "m", "segments": segments, "stages": None}]
    }
    assert [a["id"] for a in built.scenario["apps"]] == ["kept", "new"]
    # The incremental re-solve and the hysteresis rule compare against these.
    assert built.previous_plan is plan and built.previous_scenario is solved_from
    assert built.plan_version == 7


def test_no_plan_in_force_means_no_previous() -> None:
    snap = Snapshot(
        devices=[_camera()], deployments=[_deployment("d")], placement=PLACEMENT, plan_version=3
    )
    built = build(snap, {"cam": {}}, {})
    assert "previous" not in built.scenario
    assert built.previous_plan is None and built.plan_version is None
