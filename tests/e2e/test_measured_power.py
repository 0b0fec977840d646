"""Measured power end to end (issue 17): a real agent process reads a fake
/sys/class/power_supply tree (this machine has none), the control plane plans with what it
measures and says so, and a broken sensor's readings never get past the agent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.emulated import AgentSpec, EmulatedFleet
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def battery_tree(tmp_path: Path) -> Path:
    """A laptop-style tree: mains adapter unplugged, BAT0 discharging at 1.5 W (µW)."""
    root = tmp_path / "sys" / "power_supply"
    for name, files in {
        "AC": {"type": "Mains", "online": "0"},
        "BAT0": {"type": "Battery", "status": "Discharging", "power_now": "1500000"},
    }.items():
        (root / name).mkdir(parents=True)
        for file, value in files.items():
            (root / name / file).write_text(value + "\n")
    return root


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher, battery_tree: Path) -> Iterator[EmulatedFleet]:
    # Not emulated (no --emulate-gflops, no emulated battery): the agent reads its sensors.
    processes.env["CONTINUUM_AGENT_POWER_SUPPLY_ROOT"] = str(battery_tree)
    processes.env["CONTINUUM_AGENT_POWERCAP_ROOT"] = str(tmp_path / "no-powercap")
    made = EmulatedFleet(
        tmp_path, processes, agents={"cam": AgentSpec("device", "none", None, (2, 6))}
    )
    yield made
    made.close()


def _cam(fleet: EmulatedFleet) -> dict[str, Any]:
    return fleet.devices()["cam"]


def test_the_agent_measures_its_power_and_the_plan_uses_it(
    fleet: EmulatedFleet, battery_tree: Path
) -> None:
    fleet.start_server()
    fleet.start_agents()
    wait_until("a measured power report", lambda: _cam(fleet)["power_provenance"] == "measured",
               60, fleet.procs())  # fmt: skip
    cam = _cam(fleet)
    assert cam["power_measured_w"] == 1.5 and cam["power_source"] == "power_supply:BAT0"
    # Idle: the measured level (the agent serves nothing); busy: declared slope (6 - 2 W).
    assert cam["power_planned_w"]["idle"] == pytest.approx(1.5, abs=0.01)
    assert cam["power_planned_w"]["busy"] == pytest.approx(5.5, abs=0.05)
    assert cam["power_w"] == {"idle": 2, "busy": 6}
    (entry,) = fleet.admin.get("/v1/scenario").json()["devices"]
    assert entry["power_w"] == cam["power_planned_w"]
    assert "power_provenance" not in entry  # the contract refuses unknown fields

    # The sensor breaks: 20 kW from a camera. Its readings are dropped by the agent and
    # counted; the plan keeps the last good figures.
    (battery_tree / "BAT0" / "power_now").write_text("20000000000\n")

    def dropped() -> bool:
        report = _cam(fleet)["last_heartbeat"]["power"]
        return int(report["rejected"].get("absurd", 0)) >= 2

    wait_until("the broken sensor's readings dropped", dropped, 60, fleet.procs())
    cam = _cam(fleet)
    assert cam["power_measured_w"] == 1.5
    assert cam["power_planned_w"]["idle"] == pytest.approx(1.5, abs=0.01)
    metrics = fleet.admin.get("/metrics").text
    assert 'continuum_device_power_readings_dropped{device="cam",reason="absurd"}' in metrics
