"""A real agent on this machine (not emulated): it reports its hardware, and the control
plane derives its embodied carbon, its grid and its power profile with Boavizta's own
functions (issue 14)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.emulated import EmulatedFleet
from tests.harness.ports import free_port
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, agents={})
    yield made
    made.close()


def test_a_real_agent_gets_boaviztas_figures_for_its_hardware(
    fleet: EmulatedFleet, processes: Launcher, tmp_path: Path
) -> None:
    fleet.start_server()
    token = fleet.admin.post("/v1/enrollment-tokens", json={}).json()["token"]
    # No --power-idle/--power-busy and no emulation: nothing measures its power.
    agent = processes.start(
        "box",
        ["agent", "--server", fleet.url, "--enroll-token", token, "--name", "box",
         "--tier", "edge", "--battery", "none", "--listen", f"127.0.0.1:{free_port()}",
         "--state-dir", str(tmp_path / "box"), "--threads", "1"],
        {"CONTINUUM_AGENT_ZONE": "FRA"},
        tmp_path / "box.log",
    )  # fmt: skip
    wait_until(
        "the agent alive",
        lambda: fleet.devices().get("box", {}).get("alive") is True,
        120,
        [fleet.server, agent],
    )
    box = fleet.devices()["box"]
    carbon = box["carbon"]
    inventory = carbon["inventory"]
    assert inventory["kind"] == "server"
    assert inventory["cpu_cores"] == os.cpu_count()
    assert carbon["embodied_provenance"].startswith("boavizta:platform_compute_medium(")
    assert carbon["derived"]["embodied_kgco2e"] == box["embodied_kgco2e"] > 0
    assert carbon["zone"] == "FRA" and box["grid_gco2_per_kwh"] > 0
    # Boavizta's CPU profile replaced the 2 W / 6 W stand-in.
    assert carbon["power_provenance"] == "profile"
    assert box["power_w"] != {"idle": 2.0, "busy": 6.0}
    assert 0 < box["power_w"]["idle"] < box["power_w"]["busy"]
