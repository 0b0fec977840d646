"""The bandwidth probe is an upload to the next hop's real data plane: the direction
tensors take. Over loopback it measures and counts what it moves; between network
namespaces (root only) it follows this device's uplink and ignores the peer's."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agents.battery import EmulatedBattery
from agents.probes import MIN_PROBE_BYTES, PROBE_TARGET_S, KnownPeer, Peer, Prober, probe_size
from agents.state import ServingState, token_digest
from api.wire import MeasuredLink, NextHop, SourceSpec
from orchestrator.link_proposals import probe_token
from tests.agents.test_dataplane import TOKEN, Node
from tests.harness import netns
from tests.harness.processes import Launcher, wait_until

PROBE_BYTES = 128 * 1024


def _sender(peer_id: str, peer_url: str) -> ServingState:
    """A device whose deployment starts on the peer: the peer is its next hop."""
    state = ServingState(battery=EmulatedBattery(1.0, 100.0, 1.0, 5.0), device_id="cam")
    state.sources["d"] = SourceSpec(
        deployment="d", rate_rps=1.0, data_plane_token=TOKEN,
        first_hop=NextHop(device_id=peer_id, data_plane_url=peer_url, key="d/m/0-0"),
    )  # fmt: skip
    return state


def _tick(prober: Prober, times: int = 1) -> None:
    async def run() -> None:
        try:
            for _ in range(times):
                await prober.tick()
        finally:
            await prober.aclose()

    asyncio.run(run())


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Node]:
    node = Node("edge", tmp_path)
    node.state.tokens["d"] = {token_digest(TOKEN)}
    node.start()
    yield node
    node.stop()


def test_upload_probe_measures_the_next_hop_and_counts_its_bytes(peer: Node) -> None:
    prober = Prober(_sender("edge", peer.url), PROBE_BYTES, interval_s=30.0)
    _tick(prober)
    (link,) = prober.links(max_age_s=10.0)
    assert link.peer == "edge" and link.mbps > 0 and link.rtt_ms >= 0
    described = prober.state.probes
    assert described["direction"] == "upload" and described["probes"] == 2  # ping, upload
    # The upload body, both ways' headers and the ping: more than the body, not twice it.
    assert PROBE_BYTES < described["bytes_moved"] < PROBE_BYTES + 4096


def test_an_emulated_uplink_slows_the_probe_like_a_tensor(peer: Node) -> None:
    state = _sender("edge", peer.url)
    state.uplink_mbps = 4.0
    prober = Prober(state, PROBE_BYTES, interval_s=30.0)
    _tick(prober)
    (link,) = prober.links(max_age_s=10.0)
    # The emulated uplink's 4 Mbit/s, give or take the ping's RTT the figure subtracts
    # (unemulated, loopback gives hundreds).
    assert 3.0 < link.mbps < 5.0


def test_a_peer_that_refuses_the_token_gives_no_figure(peer: Node) -> None:
    peer.state.tokens["d"] = {token_digest("someone-elses-token")}
    prober = Prober(_sender("edge", peer.url), PROBE_BYTES, interval_s=30.0)
    _tick(prober)
    assert prober.links(max_age_s=10.0) == []
    assert prober.state.probes["peers"]["edge"] == {"rtt_ms": None, "mbps": None}


def test_an_unreachable_peer_gives_no_figure() -> None:
    prober = Prober(_sender("edge", "http://127.0.0.1:9"), PROBE_BYTES, interval_s=30.0)
    _tick(prober)
    assert prober.links(max_age_s=10.0) == []


def test_probes_shrink_on_slow_links_to_hold_them_briefly() -> None:
    assert probe_size(262_144, None) == 262_144  # nothing measured yet: the full probe
    assert probe_size(262_144, 100.0) == 262_144
    # 2 Mbit/s carries 125,000 bytes in half a second
    assert probe_size(262_144, 2.0) == int(2e6 / 8 * PROBE_TARGET_S)
    assert probe_size(262_144, 0.1) == MIN_PROBE_BYTES
    assert probe_size(4096, 0.1) == 4096  # never above what the operator set


# -- unused links and neighbours (issue 17) ---------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Two peers sharing no deployment with the prober: only their probe tokens open
    their `/v1/probe`."""
    nodes = (Node("edge", tmp_path), Node("gw", tmp_path))
    for node in nodes:
        node.state.allow_probe(f"agent-token-of-{node.state.device_id}")
        node.start()
    yield nodes
    for node in nodes:
        node.stop()


def _known(node: Node, declared: bool = True, token: str | None = None) -> KnownPeer:
    name = node.state.device_id
    given = token or probe_token(token_digest(f"agent-token-of-{name}"))
    return KnownPeer(Peer(name, node.url, given), declared=declared, same_site=not declared)


def _idle() -> ServingState:
    """A device no plan sends from: it has no next hop."""
    return ServingState(battery=EmulatedBattery(1.0, 100.0, 1.0, 5.0), device_id="cam")


def test_unused_links_are_probed_one_per_interval_within_the_byte_budget(
    pair: tuple[Node, Node],
) -> None:
    edge, gw = pair
    budget = 32 * 1024
    prober = Prober(_idle(), PROBE_BYTES, interval_s=1.0, unused_interval_s=3600.0,
                    unused_bytes=budget)  # fmt: skip
    prober.set_known([_known(edge), _known(gw)])
    _tick(prober, times=3)
    # Three ticks, one unused-link probe (a ping and an upload of at most the budget).
    assert prober.stats.probes == 2
    assert budget < prober.stats.bytes_moved < budget + 4096
    (link,) = prober.links(max_age_s=10.0)
    assert link.peer == "edge" and link.mbps > 0
    assert prober.proposals == {}


def test_unused_links_are_probed_in_turn(pair: tuple[Node, Node]) -> None:
    edge, gw = pair
    prober = Prober(_idle(), PROBE_BYTES, interval_s=1.0, unused_interval_s=1e-6)
    prober.set_known([_known(edge), _known(gw)])
    _tick(prober, times=2)
    assert [link.peer for link in prober.links(max_age_s=10.0)] == ["edge", "gw"]


def test_a_same_site_neighbour_becomes_a_proposal_not_a_link(pair: tuple[Node, Node]) -> None:
    _, gw = pair
    prober = Prober(_idle(), PROBE_BYTES, interval_s=1.0, unused_interval_s=1e-6)
    prober.set_known([_known(gw, declared=False)])
    _tick(prober)
    assert prober.links(max_age_s=10.0) == []
    (mbps, rtt_ms) = prober.proposals["gw"]
    assert mbps > 0 and rtt_ms >= 0


def test_a_wrong_probe_token_gives_no_figure_and_no_proposal(pair: tuple[Node, Node]) -> None:
    edge, _ = pair
    prober = Prober(_idle(), PROBE_BYTES, interval_s=1.0, unused_interval_s=1e-6)
    prober.set_known([_known(edge, declared=False, token="not-its-probe-token")])
    _tick(prober)
    assert prober.links(max_age_s=10.0) == [] and prober.proposals == {}


def _emulated_links(pair: tuple[Node, Node], state: ServingState) -> dict[str, MeasuredLink]:
    """Two probe rounds to both peers of `pair` from an agent in `state`."""
    edge, gw = pair
    prober = Prober(state, PROBE_BYTES, interval_s=1.0, unused_interval_s=1e-6)
    prober.set_known([_known(edge), _known(gw)])
    _tick(prober, times=2)
    return {link.peer: link for link in prober.links(max_age_s=10.0)}


def test_an_emulated_degraded_link_slows_only_the_probe_to_that_peer(
    pair: tuple[Node, Node],
) -> None:
    state = _idle()
    state.peer_uplink_mbps = {"edge": 4.0}
    links = _emulated_links(pair, state)
    assert 3.0 < links["edge"].mbps < 5.0
    assert links["gw"].mbps > 20.0  # loopback, not emulated


def test_an_emulated_delay_raises_the_rtt_to_that_peer_and_not_its_bandwidth(
    pair: tuple[Node, Node],
) -> None:
    state = _idle()
    state.peer_delay_ms = {"edge": 60.0}
    links = _emulated_links(pair, state)
    assert links["edge"].rtt_ms >= 60.0
    assert links["gw"].rtt_ms < 60.0  # loopback, not delayed
    # The delay is in the base RTT a bandwidth probe takes off: the link is not slower.
    assert links["edge"].mbps > 20.0


# -- between network namespaces (root only) ----------------------------------------------

# A bare data plane accepting the test token, in the peer's namespace.
PEER_SCRIPT = """
import sys, uvicorn
from agents.battery import NoBattery
from agents.dataplane import DataPlane, create_app
from agents.state import ServingState, token_digest
state = ServingState(battery=NoBattery(), device_id="edge")
state.tokens["d"] = {token_digest(sys.argv[3])}
uvicorn.run(create_app(DataPlane(state)), host=sys.argv[1], port=int(sys.argv[2]),
            log_level="warning", lifespan="off")
"""


def test_the_probe_follows_this_devices_uplink_not_the_peers(
    net: netns.Net, tmp_path: Path, processes: Launcher
) -> None:
    net.add(netns.ROOT)  # the prober runs in this process
    address = net.add("edge")
    # `processes` after `net`: the peer is stopped before its namespace goes.
    server = processes.start("peer", ["-c", PEER_SCRIPT, address, "7070", TOKEN], {},
                             tmp_path / "peer.log", prefix=net.exec_prefix("edge"),
                             program=[sys.executable])  # fmt: skip
    url = f"http://{address}:7070"
    try:
        wait_until(
            "the peer's data plane",
            lambda: httpx.get(f"{url}/v1/probe", timeout=2).status_code == 401,
            60,
            [server],
        )
        # The peer's uplink (what a download probe would time) at 2 Mbit/s: the upload
        # still finds the veth's speed.
        net.shape("edge", 2)
        prober = Prober(_sender("edge", url), PROBE_BYTES, interval_s=0.001)
        _tick(prober)
        (fast,) = prober.links(max_age_s=60.0)
        # This device's uplink at 2 Mbit/s: the upload now pays it. Two rounds: the
        # first after the change is sized from the fast figure, the second from its own.
        net.shape(netns.ROOT, 2)
        prober = Prober(_sender("edge", url), PROBE_BYTES, interval_s=0.001)
        _tick(prober, times=2)
        (slow,) = prober.links(max_age_s=60.0)
    finally:
        server.stop()
    assert fast.mbps > 10, (fast, (tmp_path / "peer.log").read_text())
    assert slow.mbps < 3, slow
