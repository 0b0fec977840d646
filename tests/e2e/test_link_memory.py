"""Links measured, remembered and discovered (issue 17, item 7), with real agents.

A degraded link the plan moved away from stays degraded in the control plane's memory (it
used to expire 3 s after probing stopped, read as healthy at the next re-plan, and draw the
plan back onto it); the agents' low-rate probe of unused links sees it recover. Agents of
one site find each other and propose a link an operator accepts."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.emulated import DEMO_AGENTS, DEPLOYMENT, AgentSpec, EmulatedFleet
from tests.harness.processes import Launcher, wait_until

pytestmark = pytest.mark.slow

# One unused link probed per this many seconds per agent: far longer than a heartbeat's
# lifetime (1.5 s here), so that between two probes the degraded figure is remembered,
# not fresh, which is what the old expiry got wrong.
UNUSED_S = 20.0
DEGRADED_MBPS = 0.2
# The direct camera-cloud link's round trip, emulated at both ends: routes follow the least
# measured RTT (scenario-v1), and loopback's few ms, which a loaded CI host moves to 12 ms,
# would otherwise make cam -> cloud -> edge look as near as cam -> edge.
CAM_CLOUD_DELAY_MS = 40.0


@pytest.fixture
def fleet(tmp_path: Path, processes: Launcher) -> Iterator[EmulatedFleet]:
    made = EmulatedFleet(
        tmp_path, processes,
        agent_args=("--unused-probe-interval", f"{UNUSED_S:g}", "--peers-refresh", "2"),
    )  # fmt: skip
    # The recovered link's remembered figure climbs in steps, one per probe report; a plan
    # made on the way up (about 40 of 50 Mbit/s) may take another route, and the last step
    # is under the default 30% that re-plans. A smaller fraction makes each step re-plan,
    # so the plan's return does not depend on where the climb was when the first step came.
    made.env["CONTINUUM_LINK_CHANGE_FRACTION"] = "0.1"
    yield made
    made.close()


def _hops(segments: list[dict[str, Any]]) -> set[tuple[str, str]]:
    devices = [s["device"] for s in segments]
    return {(a, b) if a < b else (b, a) for a, b in itertools.pairwise(devices) if a != b}


def _app_segments(plan: dict[str, Any]) -> list[dict[str, Any]]:
    (app,) = [a for a in plan["apps"] if a["id"] == DEPLOYMENT]
    segments: list[dict[str, Any]] = app["segments"]
    return segments


def _link(fleet: EmulatedFleet, a: str, b: str) -> dict[str, Any]:
    body = fleet.admin.get("/v1/links").json()
    (found,) = [m for m in body["measured"] if (m["a"], m["b"]) == (a, b)]
    return dict(found)


def _emulate(fleet: EmulatedFleet, name: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{fleet.agent_url(name)}/v1/emulation", json=body, timeout=10,
        headers={"Authorization": f"Bearer {fleet.agent_token(name)}"},
    )  # fmt: skip
    assert response.status_code == 200, response.text


def _what_if(fleet: EmulatedFleet) -> set[tuple[str, str]]:
    """The hops a re-plan now would use (a dry run changes nothing)."""
    response = fleet.admin.post("/v1/plan/solve", json={"dry_run": True})
    assert response.status_code == 200, response.text
    return _hops(_app_segments(response.json()["plan"]))


def test_a_degraded_link_is_remembered_until_a_probe_sees_it_recover(
    fleet: EmulatedFleet,
) -> None:
    fleet.start_server()
    fleet.start_agents()
    _emulate(fleet, "cam", {"peer_delay_ms": {"cloud": CAM_CLOUD_DELAY_MS}})
    _emulate(fleet, "cloud", {"peer_delay_ms": {"cam": CAM_CLOUD_DELAY_MS}})
    fleet.deploy()
    used = ("cam", "edge")
    # The premise is a plan over cam~edge. On a loaded host the first plan may be made on
    # unsettled figures and skip the edge (it went cam -> cloud once in a full CI run), so
    # the test waits for such a plan (a re-plan as the figures settle) instead of reading
    # the first one only.
    wait_until("the plan to send over cam~edge",
               lambda: fleet.complete() and used in _hops(fleet.segments()), 90,
               fleet.procs())  # fmt: skip

    _emulate(fleet, "cam", {"peer_uplink_mbps": {"edge": DEGRADED_MBPS}})
    wait_until("the plan to leave the degraded link",
               lambda: fleet.complete() and used not in _hops(fleet.segments()), 120,
               fleet.procs())  # fmt: skip

    # Probing of the link is now the low-rate kind: its figure goes stale between two
    # probes, and stays the degraded one, so no re-plan brings the plan back onto it.
    seen: list[dict[str, Any]] = []

    def stale_now() -> bool:
        # One read, kept: a second one could already be fresh again (the next probe).
        seen.append(_link(fleet, *used))
        return not seen[-1]["fresh"]

    wait_until("the degraded figure to go stale", stale_now, 2 * UNUSED_S + 10, fleet.procs())
    stale = seen[-1]
    assert stale["planned"]["source"] == "remembered", stale
    assert stale["planned"]["mbps"] < 10 * DEGRADED_MBPS, stale
    assert stale["age_s"] > fleet.heartbeat_s * 3, stale
    assert used not in _what_if(fleet)
    ends = fleet.admin.get("/v1/links").json()["declared"]
    (declared,) = [d for d in ends if (d["a"], d["b"]) == used]
    assert declared["planned"]["mbps"] < 10 * DEGRADED_MBPS, declared
    assert used not in _hops(fleet.segments())

    _emulate(fleet, "cam", {"peer_uplink_mbps": {"edge": None}})
    # The next unused-link probe measures it at loopback speed; the estimate, capped at
    # the declared 50 Mbit/s, moves up as the reports come.
    wait_until("a probe to see the link recover",
               lambda: _link(fleet, *used)["planned"]["mbps"] > 40, 3 * UNUSED_S + 20,
               fleet.procs())  # fmt: skip
    assert used in _what_if(fleet)
    # The link trigger re-plans on it, and the plan returns to the cheaper route.
    wait_until("the plan to return to the recovered link",
               lambda: fleet.complete() and used in _hops(fleet.segments()), 120,
               fleet.procs())  # fmt: skip
    # The agent's unused-link probing stays within its bound: one probe per UNUSED_S.
    probes = fleet.status("cam")["probes"]
    assert probes["unused_interval_s"] == UNUSED_S
    assert probes["unused_bytes"] == 65_536


SITE_AGENTS = {
    "cam": AgentSpec("device", "none", 10, (2, 6), labels="site=lab"),
    "edge": AgentSpec("edge", "none", 400, (10, 35), labels="site=lab"),
    "cloud": DEMO_AGENTS["cloud"],
}


def test_agents_of_a_site_propose_a_measured_link_an_operator_accepts(
    tmp_path: Path, processes: Launcher
) -> None:
    fleet = EmulatedFleet(
        tmp_path, processes, agents=SITE_AGENTS,
        agent_args=("--unused-probe-interval", "1", "--peers-refresh", "1"),
    )  # fmt: skip
    try:
        fleet.start_server()
        fleet.start_agents()

        def proposals() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = fleet.admin.get("/v1/links/proposals").json()
            return rows

        wait_until("a link proposal", lambda: len(proposals()) == 1, 60, fleet.procs())
        time.sleep(3)  # both ends measure it: still one proposal for the pair
        (proposal,) = proposals()
        assert (proposal["a"], proposal["b"], proposal["site"]) == ("cam", "edge", "lab")
        assert proposal["state"] == "pending" and proposal["mbps"] > 0, proposal
        assert fleet.admin.get("/v1/links").json()["declared"] == []  # nothing until accepted

        accepted = fleet.admin.post(f"/v1/links/proposals/{proposal['id']}/accept")
        assert accepted.status_code == 200, accepted.text
        (link,) = fleet.admin.get("/v1/links").json()["declared"]
        assert (link["a"], link["b"], link["id"]) == ("cam", "edge", accepted.json()["link_id"])
        again = fleet.admin.post(f"/v1/links/proposals/{proposal['id']}/reject")
        assert again.status_code == 409, again.text
        actions = [e["action"] for e in fleet.admin.get("/v1/audit").json()]
        assert "link.proposal.accepted" in actions and "link.declared" in actions
        # The cloud has no site label: nobody proposes a link to it.
        assert all("cloud" not in (p["a"], p["b"]) for p in proposals())
    finally:
        fleet.close()
