"""A partition the new plan drops keeps serving for a drain period after its replacement
route is live: requests an upstream agent started on the old route are still on their
way (found by the network-namespace test, where a 2 Mbit/s uplink holds a tensor for
most of a second and the downstream agent retired its partition under it)."""

from __future__ import annotations

from api.wire import DesiredState
from tests.agents.test_dataplane import Node, X, _infer, _partitions, nodes

__all__ = ["nodes"]


def test_a_dropped_partition_drains_before_it_is_unloaded(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    b.watcher.drain_s = 5.0
    b.install(DesiredState(device_id="b", version=2), [])  # version 2 drops d/m/1-1 from b

    assert b.watcher.retire(live_version=2, now=100.0) == []  # live: the drain starts
    # a still routes to b's old partition (an in-flight request of the old route): served
    assert _infer(a, X).status_code == 200
    assert b.watcher.retire(live_version=2, now=104.9) == []
    assert b.watcher.retire(live_version=2, now=105.0) == ["d/m/1-1"]
    assert b.state.loaded == {}
    assert _infer(a, X).status_code == 404


def test_a_partition_wanted_again_stops_draining(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    b.watcher.drain_s = 5.0
    kept = b.state.loaded["d/m/1-1"]
    b.install(DesiredState(device_id="b", version=2), [])
    assert b.watcher.retire(live_version=2, now=100.0) == []
    b.install(DesiredState(device_id="b", version=3, partitions=[kept.spec]), [])
    assert b.watcher.retire(live_version=3, now=200.0) == []
    assert "d/m/1-1" in b.state.loaded and _infer(a, X).status_code == 200


def test_without_a_drain_period_the_route_going_live_unloads_at_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    b.install(DesiredState(device_id="b", version=2), [])
    assert b.watcher.retire(live_version=2, now=100.0) == ["d/m/1-1"]
