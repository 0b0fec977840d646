"""Local fallback at the edge (issue 18): the camera keeps a whole-model copy the plan
asked it to keep (`fallback: local-model`); when its next hop is killed, requests are
answered from that copy, marked degraded, the camera reports the hop unreachable at once
and the control plane re-plans around it without waiting for the heartbeats to lapse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.emulated import DEPLOYMENT, EmulatedFleet, Traffic
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

FALLBACK_KEY = f"{DEPLOYMENT}/squeezenet/fallback"
DEGRADED = "X-Continuum-Degraded"


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(tmp_path, processes)
    yield made
    made.close()


def _hops(response: object) -> list[str]:
    trace = json.loads(response.headers["X-Continuum-Trace"])  # type: ignore[attr-defined]
    return [h["device"] for h in trace]


def test_killed_next_hop_is_answered_locally_degraded_and_replanned(
    fleet: EmulatedFleet,
) -> None:
    fleet.start_server()
    fleet.start_agents()
    token = fleet.deploy(fallback="local-model")
    first = fleet.plan()
    assert {s["device"] for s in fleet.segments()} == {"cam", "edge", "cloud"}
    held = fleet.status("cam")["partitions"]
    assert FALLBACK_KEY in held and held[FALLBACK_KEY]["current"], sorted(held)

    traffic = Traffic(fleet, token)
    try:
        for _ in range(3):
            response = traffic.send()
            assert response is not None and response.status_code == 200, response
            assert DEGRADED not in response.headers
            assert "edge" in _hops(response)

        fleet.agents["edge"].kill()  # SIGKILL: the camera's next hop is gone
        response = traffic.send()
        assert response is not None and response.status_code == 200, response and response.text
        assert "edge" in response.headers[DEGRADED], response.headers
        assert _hops(response) == ["cam"]
        trace = json.loads(response.headers["X-Continuum-Trace"])
        assert trace[-1]["partition"] == FALLBACK_KEY and trace[-1]["degraded"] is True

        # Every request is answered (degraded until the new plan is live), and the re-plan
        # is the camera's report, not the lapse of the edge's heartbeats.
        statuses: list[int | None] = []

        def replanned() -> bool:
            sent = traffic.send()
            statuses.append(None if sent is None else sent.status_code)
            plan = fleet.plan()
            return (
                plan["version"] > first["version"]
                and bool(plan["rollout"]["complete"])
                and plan["rollout"]["state"] == "live"
            )

        wait_until("a re-plan without the edge", replanned, 120, fleet.procs())
        assert set(statuses) == {200}, statuses
        reason = fleet.plan()["reason"] or ""
        assert "device edge unreachable from cam" in reason, reason
        assert "edge" not in [s["device"] for s in fleet.segments()]
        status = fleet.status("cam")
        assert status["degraded_answers"] >= 1
        assert [u["peer"] for u in status["unreachable"]] == ["edge"]

        # Once the new routes are live: answered in full again, around the edge.
        for _ in range(5):
            response = traffic.send()
            assert response is not None and response.status_code == 200
            assert DEGRADED not in response.headers, response.headers
            assert "edge" not in _hops(response)
    finally:
        traffic.close()
