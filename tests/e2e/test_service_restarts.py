"""The control plane's own services restarted under load (issue 18, "Faults"): a private
Redis, then a private PostgreSQL, each killed and started again while agents heartbeat and
live traffic flows through the camera. The shared services on 6379/5432 are never
touched (other tests use them).

What must hold, each time: the control plane recovers with no hand on it (`/readyz`
green again, every device alive again, a change made afterwards is planned and rolled
out), the data plane never stops serving, and nothing is lost beyond the outage: the
heartbeats the agents send once the service is back are taken, so no device is counted
lost and the deployment is not re-placed for an outage of the control plane's own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.emulated import EmulatedFleet
from tests.harness.faults import (
    Baseline,
    PrivatePostgres,
    PrivateRedis,
    Recorder,
    assert_nothing_lost,
)
from tests.harness.processes import CONTINUUM, Launcher, wait_until

pytestmark = pytest.mark.slow

# A device counts as lost after 3 silent intervals. At 0.5 s (the harness's default) a
# machine loaded past 20 on its 2 cores delayed heartbeats by 1.5 s and more with no fault
# at all; what these tests look for is a loss the fault causes.
HEARTBEAT_S = 1.0

OUTAGE_S = 3.0


def _all_alive(fleet: EmulatedFleet) -> bool:
    response = fleet.admin.get("/v1/devices")
    return response.status_code == 200 and all(d["alive"] for d in response.json())


def _ready(fleet: EmulatedFleet) -> bool:
    return fleet.admin.get("/readyz").status_code == 200


def _survives(fleet: EmulatedFleet, restart: object) -> None:
    """Deploy, restart the service under traffic, and check what must hold."""
    fleet.start_server()
    fleet.start_agents()
    token = fleet.deploy()
    version = fleet.plan()["version"]
    baseline = Baseline.of(fleet)
    recorder = Recorder(fleet, token).start()
    try:
        wait_until("traffic to flow", lambda: recorder.served() >= 5, 60, fleet.procs())
        assert callable(restart)
        restart()
        back = time.monotonic()
        wait_until("/readyz after the outage", lambda: _ready(fleet), 120, fleet.procs())
        wait_until("every device alive again", lambda: _all_alive(fleet), 120, fleet.procs())
        wait_until("traffic after the outage", lambda: recorder.served(back) >= 10, 120,
                   fleet.procs())  # fmt: skip
    finally:
        recorder.stop()
    # Not re-placed for the outage (measured links may still move it: loopback probes
    # jitter), and no device counted lost.
    assert_nothing_lost(fleet, recorder, baseline)
    # Recovered without a hand: a change now is planned and rolled out as usual.
    cordoned = fleet.admin.post("/v1/devices/edge/cordon")
    assert cordoned.status_code == 200, cordoned.text

    def replaced() -> bool:
        plan = fleet.plan()
        return (
            plan["version"] > version
            and bool(plan["rollout"]["complete"])
            and "edge" not in {s["device"] for s in fleet.segments()}
        )

    wait_until("a re-plan around the cordoned edge", replaced, 180, fleet.procs())


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes, heartbeat_s=HEARTBEAT_S)
    yield made
    made.close()


def test_redis_restarted_under_load(fleet: EmulatedFleet, processes: Launcher) -> None:
    redis = PrivateRedis(processes, fleet.tmp / "redis.log")
    fleet.env["CONTINUUM_REDIS_URL"] = redis.url
    _survives(fleet, lambda: redis.restart(OUTAGE_S))


def test_postgres_restarted_under_load(fleet: EmulatedFleet, processes: Launcher) -> None:
    pg = PrivatePostgres(processes, fleet.tmp / "pg", fleet.tmp / "postgres.log")
    fleet.env["CONTINUUM_DATABASE_URL"] = pg.url
    subprocess.run([*CONTINUUM, "db", "upgrade"], env={**os.environ, **fleet.env},
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    _survives(fleet, lambda: pg.restart(OUTAGE_S))
