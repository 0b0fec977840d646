"""Restarting the control plane mid-rollout: the rollout completes or rolls back, and
nothing is lost (issue 6, "What must hold").

The rollout is started by cordoning the edge box, which hosts part of the model: the
plan in force then breaks a constraint, so the loop must re-place (camera -> cloud) and
the camera and the cloud must load new partitions (make-before-break) before routes
switch. The control plane is SIGKILLed while GET /v1/plan shows that rollout `loading`
or `switching`, and restarted on the same data directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.emulated import DEPLOYMENT, EmulatedFleet
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

# A slower heartbeat than the other tests' widens the loading phase (targets report their
# new partitions ready in a heartbeat), so the poll below sees it.
HEARTBEAT_S = 1.0


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, heartbeat_s=HEARTBEAT_S)
    yield made
    made.close()


def _decided(fleet: EmulatedFleet) -> set[int]:
    """Every plan version the planner put into a rollout, from the audit log."""
    entries = fleet.admin.get("/v1/audit", params={"limit": 1000}).json()
    return {int(e["detail"]["plan_version"]) for e in entries if e["action"] == "placement.decided"}


def test_control_plane_killed_mid_rollout_resumes_it(fleet: EmulatedFleet) -> None:
    fleet.start_server()
    fleet.start_agents()
    fleet.deploy()
    first = fleet.plan()
    assert {s["device"] for s in fleet.segments()} == {"cam", "edge", "cloud"}

    cordoned = fleet.admin.post("/v1/devices/edge/cordon")
    assert cordoned.status_code == 200, cordoned.text
    mid: dict[str, Any] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not mid:
        plan = fleet.plan()
        if plan["version"] > first["version"] and plan["rollout"]["state"] in (
            "loading", "switching",
        ):  # fmt: skip
            fleet.server.kill()  # SIGKILL: a crash in the middle of the rollout
            mid = plan
        elif plan["version"] > first["version"]:
            pytest.fail(f"the rollout went {plan['rollout']['state']} before the poll saw it")
        time.sleep(0.02)
    assert mid, "no rollout started within 120 s of cordoning the edge"

    fleet.start_server()  # same data directory, same port

    def settled() -> bool:
        plan = fleet.plan()
        return plan["rollout"]["state"] in ("live", "rolled_back") and bool(
            plan["rollout"]["complete"]
        )

    wait_until("the rollout to complete or roll back", settled, 120, fleet.procs())
    after = fleet.plan()
    if after["rollout"]["state"] == "live":
        assert after["version"] >= mid["version"]
        assert "edge" not in {s["device"] for s in fleet.segments()}
    else:  # rolled back: the plan that was live before the rollout is in force again
        assert after["version"] == first["version"]

    # Nothing lost: the devices, the deployment and every plan version decided so far.
    devices = fleet.devices()
    assert set(devices) == {"cam", "edge", "cloud"}
    assert devices["edge"]["state"] == "cordoned"
    wait_until(
        "the agents to re-attach",
        lambda: all(d["alive"] for d in fleet.devices().values()),
        120,
        fleet.procs(),
    )
    deployments = [d["name"] for d in fleet.admin.get("/v1/deployments").json()]
    assert deployments == [DEPLOYMENT]
    assert {first["version"], mid["version"]} <= _decided(fleet)
