"""The agent's operational routes: /healthz and /readyz open for probes; /v1/status and
/v1/emulation behind the agent's own token or the operator's status token, loopback or
not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.wire import DesiredState, Endpoint, PartitionSpec
from tests.agents.test_dataplane import PART_A, Node, _ref

AGENT_TOKEN = "cnt_agent_" + "a" * 40
STATUS_TOKEN = "an-operators-status-token"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    made = Node("a", tmp_path)
    made.state.allow_status(AGENT_TOKEN, STATUS_TOKEN)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_status_needs_the_agents_token_or_the_status_token(node: Node) -> None:
    bare = httpx.get(f"{node.url}/v1/status")
    assert bare.status_code == 401
    assert bare.headers["content-type"] == "application/problem+json"
    assert "CONTINUUM_AGENT_STATUS_TOKEN" in bare.json()["detail"]
    assert httpx.get(f"{node.url}/v1/status", headers=_auth("wrong")).status_code == 403
    for token in (AGENT_TOKEN, STATUS_TOKEN):
        status = httpx.get(f"{node.url}/v1/status", headers=_auth(token))
        assert status.status_code == 200
        assert status.json()["emulated"]["battery"] is True
        assert status.json()["battery"]["kind"] == "emulated"


def test_emulation_writes_need_a_token_even_from_loopback(node: Node) -> None:
    url = f"{node.url}/v1/emulation"
    assert httpx.post(url, json={"battery_pct": 10}).status_code == 401
    assert httpx.post(url, json={"battery_pct": 10}, headers=_auth("wrong")).status_code == 403
    assert node.state.battery.level_pct() == 100.0  # nothing changed
    plugged = httpx.post(
        url, json={"charging": True, "battery_pct": 40}, headers=_auth(AGENT_TOKEN)
    )
    assert plugged.status_code == 200, plugged.text
    assert plugged.json()["charging"] is True and plugged.json()["battery_pct"] == 40
    status = httpx.get(f"{node.url}/v1/status", headers=_auth(STATUS_TOKEN)).json()
    assert status["battery"]["charging"] is True
    bad = httpx.post(url, json={"charging": "yes"}, headers=_auth(AGENT_TOKEN))
    assert bad.status_code == 422 and "charging" in bad.json()["detail"]


def test_emulation_degrades_and_restores_the_uplink_to_one_peer(node: Node) -> None:
    url = f"{node.url}/v1/emulation"
    slow = httpx.post(url, json={"peer_uplink_mbps": {"edge": 0.5}}, headers=_auth(AGENT_TOKEN))
    assert slow.status_code == 200, slow.text
    assert slow.json()["peer_uplink_mbps"] == {"edge": 0.5}
    assert node.state.uplink_delay_s(62_500, "edge") == pytest.approx(1.0)
    assert node.state.uplink_delay_s(62_500, "cloud") == 0.0  # other peers unaffected
    status = httpx.get(f"{node.url}/v1/status", headers=_auth(STATUS_TOKEN)).json()
    assert status["emulated"]["peer_uplink_mbps"] == {"edge": 0.5}
    for bad in ({"edge": 0}, {"edge": "fast"}, ["edge"]):
        answer = httpx.post(url, json={"peer_uplink_mbps": bad}, headers=_auth(AGENT_TOKEN))
        assert answer.status_code == 422 and "peer_uplink_mbps" in answer.json()["detail"]
    cleared = httpx.post(url, json={"peer_uplink_mbps": {"edge": None}}, headers=_auth(AGENT_TOKEN))
    assert cleared.json()["peer_uplink_mbps"] == {}


def test_emulation_takes_only_finite_numbers_for_its_scalar_figures(node: Node) -> None:
    url = f"{node.url}/v1/emulation"
    # JSON's true is an int to Python, and Python's json reads Infinity and NaN.
    for field, bad in (
        ("uplink_mbps", True),
        ("uplink_mbps", float("inf")),
        ("uplink_mbps", float("nan")),
        ("battery_pct", True),
        ("battery_pct", float("nan")),
    ):
        body = json.dumps({field: bad})
        answer = httpx.post(url, content=body, headers=_auth(AGENT_TOKEN))
        assert answer.status_code == 422 and field in answer.json()["detail"], (field, bad)
    assert node.state.uplink_mbps is None and node.state.battery.level_pct() == 100.0
    good = httpx.post(url, json={"uplink_mbps": 12}, headers=_auth(AGENT_TOKEN))
    assert good.status_code == 200 and node.state.uplink_mbps == 12.0


def test_emulation_adds_a_delay_to_one_peer_and_a_bad_field_changes_nothing(node: Node) -> None:
    url = f"{node.url}/v1/emulation"
    slow = httpx.post(url, json={"peer_delay_ms": {"edge": 40}}, headers=_auth(AGENT_TOKEN))
    assert slow.status_code == 200, slow.text
    assert slow.json()["peer_delay_ms"] == {"edge": 40.0}
    assert node.state.peer_delay_s("edge") == pytest.approx(0.040)
    # A send to the peer pays the delay over the wire time; other peers pay nothing.
    assert node.state.uplink_delay_s(0, "edge") == pytest.approx(0.040)
    assert node.state.uplink_delay_s(62_500, "cloud") == 0.0
    status = httpx.get(f"{node.url}/v1/status", headers=_auth(STATUS_TOKEN)).json()
    assert status["emulated"]["peer_delay_ms"] == {"edge": 40.0}
    before = node.state.battery.level_pct()
    for bad in ({"edge": -1}, {"edge": "slow"}, {"edge": True}, {"edge": float("inf")}, [1]):
        body = {"battery_pct": 3, "peer_delay_ms": bad}
        answer = httpx.post(url, content=json.dumps(body), headers=_auth(AGENT_TOKEN))
        assert answer.status_code == 422 and "peer_delay_ms" in answer.json()["detail"]
        # Checked before anything is applied: the valid battery level in the same body
        # was not set either.
        assert node.state.battery.level_pct() == before
        assert node.state.peer_delay_ms == {"edge": 40.0}
    cleared = httpx.post(url, json={"peer_delay_ms": {"edge": None}}, headers=_auth(AGENT_TOKEN))
    assert cleared.json()["peer_delay_ms"] == {} and node.state.peer_delay_s("edge") == 0.0


def test_health_is_open_and_readiness_follows_enrollment_and_loading(node: Node) -> None:
    assert httpx.get(f"{node.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{node.url}/readyz")
    assert ready.status_code == 200 and ready.json()["device_id"] == "a"
    node.state.device_id = ""
    waiting = httpx.get(f"{node.url}/readyz")
    assert waiting.status_code == 503 and waiting.json()["detail"] == "not enrolled yet"


def test_readiness_waits_for_the_partitions_of_the_state_in_force(node: Node) -> None:
    spec = PartitionSpec(
        key="d/m/0-0", deployment="d", model="m", first="h", last="h", first_index=0,
        last_index=0, artifact=_ref(PART_A), exits=[], next_hop=None,
        sink=Endpoint(device_id="a", data_plane_url=node.url), data_plane_token="t",
    )  # fmt: skip
    # The state in force names a partition that is not loaded (yet): not ready.
    node.state.desired = DesiredState(device_id="a", version=2, partitions=[spec])
    waiting = httpx.get(f"{node.url}/readyz")
    assert waiting.status_code == 503
    assert waiting.json()["detail"] == "still loading 1: d/m/0-0"
    assert httpx.get(f"{node.url}/healthz").status_code == 200  # alive all the same
