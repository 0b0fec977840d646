"""Measured power through HTTP (issue 17): a heartbeat's fitted figures replace the
declared ones in the scenario, the device view and the metrics say where they come from,
and a bad report is dropped, counted and never planned with."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import agent_auth, beat, enroll

pytestmark = pytest.mark.anyio

FITTED = {"provenance": "fitted", "source": "power_supply:BAT0", "watts": 1.4, "idle_w": 0.6,
          "busy_w": 2.5, "samples": 40, "rejected": {"absurd": 2}}  # fmt: skip


async def _scenario_power(client: httpx.AsyncClient, device: str) -> dict[str, float]:
    scenario = (await client.get("/v1/scenario")).json()
    (entry,) = [d for d in scenario["devices"] if d["id"] == device]
    power: dict[str, float] = entry["power_w"]
    return power


async def test_fitted_power_is_planned_with_and_shown_with_its_provenance(
    client: httpx.AsyncClient,
) -> None:
    cam = await enroll(client, "cam-1")  # declared: 1 W idle, 4 W busy
    await beat(client, cam, battery_pct=80)
    device = (await client.get("/v1/devices/cam-1")).json()
    assert device["power_provenance"] == "declared"
    assert device["power_planned_w"] == device["power_w"] == {"idle": 1, "busy": 4}
    assert device["power_measured_w"] is None
    assert await _scenario_power(client, "cam-1") == {"idle": 1, "busy": 4}

    await beat(client, cam, battery_pct=79, utilization=0.3, power=FITTED)
    device = (await client.get("/v1/devices/cam-1")).json()
    assert device["power_provenance"] == "fitted"
    assert device["power_planned_w"] == {"idle": 0.6, "busy": 2.5}
    assert device["power_w"] == {"idle": 1, "busy": 4}  # the declared figures are kept
    assert (device["power_measured_w"], device["power_source"]) == (1.4, "power_supply:BAT0")
    assert await _scenario_power(client, "cam-1") == {"idle": 0.6, "busy": 2.5}

    metrics = (await client.get("/metrics")).text
    for line in (
        'continuum_device_power_watts{device="cam-1",figure="idle",provenance="fitted"} 0.6',
        'continuum_device_power_watts{device="cam-1",figure="measured",provenance="fitted"} 1.4',
        'continuum_device_battery_percent{device="cam-1"} 79.0',
        'continuum_device_utilization{device="cam-1"} 0.3',
        'continuum_device_power_readings_dropped{device="cam-1",reason="absurd"} 2.0',
    ):
        assert line in metrics, line


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ({**FITTED, "idle_w": 5000.0, "busy_w": 6000.0}, "absurd"),  # a 5 kW camera
        ({**FITTED, "idle_w": 3.0, "busy_w": 2.0}, "busy_below_idle"),
    ],
)
async def test_an_implausible_report_is_dropped_and_counted(
    client: httpx.AsyncClient, report: dict[str, object], reason: str
) -> None:
    cam = await enroll(client, "cam-1")
    await beat(client, cam, battery_pct=80, power=report)
    device = (await client.get("/v1/devices/cam-1")).json()
    assert device["power_provenance"] == "declared"
    assert "power" not in device["last_heartbeat"]
    assert await _scenario_power(client, "cam-1") == {"idle": 1, "busy": 4}
    metrics = (await client.get("/metrics")).text
    assert f'continuum_power_reports_dropped_total{{reason="{reason}"}} 1.0' in metrics


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"power": {"provenance": "fitted", "idle_w": NaN, "busy_w": 2}}', "power.idle_w"),
        ('{"power": {"provenance": "fitted", "idle_w": -1, "busy_w": 2}}', "power.idle_w"),
        ('{"power": {"provenance": "guessed", "idle_w": 1, "busy_w": 2}}', "power.provenance"),
    ],
)
async def test_a_malformed_report_is_refused_naming_the_field(
    client: httpx.AsyncClient, body: str, field: str
) -> None:
    cam = await enroll(client, "cam-1")
    response = await client.post(
        "/v1/agents/cam-1/heartbeat", content=body,
        headers={**agent_auth(cam), "content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    assert (await client.get("/v1/devices/cam-1")).json()["alive"] is False
