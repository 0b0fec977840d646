"""The agents' service on the harness: token lookups from the cache (SQL once on a miss),
a re-enrollment's old token dying, and heartbeats that write the live state only."""

from __future__ import annotations

import pytest

from orchestrator import fleet, tokens
from orchestrator.services.agents import Agents
from tests.orchestrator.harness import ACTOR, Harness

pytestmark = pytest.mark.anyio


def _agents(harness: Harness, pokes: list[None]) -> Agents:
    return Agents(
        harness.settings,
        harness.live,
        harness.run_sync,
        harness.publish,
        harness.metrics,
        harness.owner,
        poke=lambda: pokes.append(None),
    )


async def _enroll(
    harness: Harness, agents: Agents, name: str, agent_token: str | None = None
) -> dict[str, object]:
    _, secret = await harness.run_sync(fleet.create_enrollment_token, ACTOR, 600.0, True)
    request = {
        "token": secret, "name": name, "tier": "edge", "gflops": 100.0, "memory_mb": 1024.0,
        "power_w": {"idle": 5.0, "busy": 20.0}, "battery": None, "labels": {},
        "data_plane_url": f"http://{name}.test:9000", "grid_gco2_per_kwh": 0.0,
        "embodied_kgco2e": 0.0, "lifetime_h": 35040.0, "emulated": False,
    }  # fmt: skip
    return await agents.enroll(request, agent_token)


async def test_tokens_are_answered_from_the_cache_and_die_on_reenrollment(
    harness: Harness,
) -> None:
    agents = _agents(harness, [])
    await agents.load()
    first = await _enroll(harness, agents, "edge-1")
    token = str(first["agent_token"])
    assert agents.cached_agent(tokens.hash_token(token)) == "edge-1"
    assert ("device", {"device_id": "edge-1", "change": "enrolled"}) in harness.events
    again = await _enroll(harness, agents, "edge-1", token)
    assert again["device_id"] == "edge-1" and again["agent_token"] != token
    assert agents.cached_agent(tokens.hash_token(token)) is None
    assert await agents.agent_for(token) is None  # gone from SQL too
    # A fresh replica's cache is empty until load(); a miss asks SQL once, then caches.
    other = _agents(harness, [])
    fresh = str(again["agent_token"])
    assert other.cached_agent(tokens.hash_token(fresh)) is None
    assert await other.agent_for(fresh) == "edge-1"
    assert other.cached_agent(tokens.hash_token(fresh)) == "edge-1"
    other.forget("edge-1")
    assert other.cached_agent(tokens.hash_token(fresh)) is None


async def test_operator_tokens(harness: Harness) -> None:
    agents = _agents(harness, [])
    await agents.load()
    admin = harness.settings.admin_token_file.read_text().strip()
    assert await agents.operator(admin) == "operator:admin"
    assert await agents.operator("cnt_admin_not-it") is None


async def test_a_heartbeat_writes_the_live_state_and_pokes_the_loop(harness: Harness) -> None:
    pokes: list[None] = []
    agents = _agents(harness, pokes)
    await harness.owner.publish_revision(1, 5, "live", [], live=4)
    links = [
        {"peer": "cam-1", "mbps": 20.0, "rtt_ms": 2.0},
        {"peer": "edge-1", "mbps": 1e4, "rtt_ms": 0.0},
    ]
    beat = {"battery_pct": 55.0, "links": links}
    ack = await agents.heartbeat("edge-1", beat)
    assert (ack.desired_version, ack.live_version) == (5, 4)
    assert ack.interval_s == harness.settings.heartbeat_interval_s
    stored = await harness.live.heartbeat("edge-1")
    assert stored is not None and stored["battery_pct"] == 55.0 and "links" not in stored
    # The link to cam-1 (stored under its sorted pair), not the agent's own loopback.
    assert list(await harness.live.links()) == [("cam-1", "edge-1")]
    assert pokes == [None]
