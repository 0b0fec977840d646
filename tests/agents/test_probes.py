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
from agents.probes import MIN_PROBE_BYTES, PROBE_TARGET_S, Prober, probe_size
from agents.state import ServingState, token_digest
from api.wire import NextHop, SourceSpec
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
