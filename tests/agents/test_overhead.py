"""Each hop's overhead (time beyond compute and the hops after it) measured on two real
data planes (agents/hoproute.py, agents/dataplane.py), for the contract's overhead_ms."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.hoproute import HopTiming
from agents.metrics import Metrics
from tests.agents.test_dataplane import TOKEN, Node, X, _infer, _npy, _partitions
from tests.harness.processes import wait_until


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    a, b = Node("a", tmp_path), Node("b", tmp_path)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _recorded(node: Node, key: str, count: int) -> None:
    """Until `key` has `count` overheads: they are recorded once the answer's last byte is
    sent, which a client can see before the agent's event loop gets back to it."""
    wait_until(
        f"{count} overheads of {key}",
        lambda: (m := node.state.metrics.snapshot().get(key)) is not None
        and m.overhead_count >= count,
        10, poll_s=0.01,
    )  # fmt: skip


def test_both_hops_record_their_overhead(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    _partitions(a, b, None, 0.0)
    for _ in range(5):
        assert _infer(a, X).status_code == 200
    _recorded(a, "d/m/0-0", 5)
    _recorded(b, "d/m/1-1", 5)
    first = a.state.metrics.snapshot()["d/m/0-0"]  # the source's own partition: ingress
    second = b.state.metrics.snapshot()["d/m/1-1"]  # a hop over HTTP
    for m in (first, second):
        assert m.overhead_count == 5
        assert m.overhead_ms is not None and 0 <= m.overhead_ms < 5_000
    assert first.recent_count == second.recent_count == 5
    # The source also times each request end to end, for predicted against measured.
    latency = a.state.metrics.requests()["d"]
    assert (latency.requests, latency.window) == (5, 5)
    assert 0 < latency.p50_ms <= latency.p95_ms
    assert b.state.metrics.requests() == {}  # not a source


def test_timing_subtracts_compute_and_downstream() -> None:
    started = time.perf_counter() - 0.050  # 50 ms ago
    timing = HopTiming(key="k", compute_ms=20.0, downstream_ms=10.0)
    assert 20.0 <= timing.overhead_ms(started) < 20.0 + 1_000


def test_impossible_overheads_are_dropped_and_counted() -> None:
    metrics = Metrics()
    metrics.observe("k", 1.0)
    for value in (float("nan"), -5.0, -0.2, 3.0):
        metrics.observe_overhead("k", value)
    snap = metrics.snapshot()["k"]
    assert metrics.overhead_dropped == 2
    assert (snap.overhead_count, snap.overhead_ms) == (2, 1.5)  # -0.2 counts as 0


def test_the_overhead_counts_from_the_requests_first_byte(nodes: tuple[Node, Node]) -> None:
    """The request line and half its headers, then a pause, then the rest: the HTTP
    server calls the app only once the headers are complete, so an overhead timed from
    the app would leave the pause out; timed from the first byte (agents/ingress.py) it
    holds it, as a client's round trip does."""
    a, b = nodes
    _partitions(a, b, None, 0.0)
    body = _npy(X)
    head = (
        f"POST /v1/infer/d HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/x-npy\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    pause_s = 0.3
    with socket.create_connection(("127.0.0.1", a.port), timeout=10) as sock:
        sock.sendall(head[:40])
        time.sleep(pause_s)
        sock.sendall(head[40:] + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    _recorded(a, "d/m/0-0", 1)
    # The server reads the first bytes when its loop gets to them, which a busy machine
    # delays by a few ms (298.3 ms was seen in a full run): the pause is held, less that
    # delay. Timed from the app instead, the overhead would be a few ms, far below this.
    held_ms = 0.8 * pause_s * 1000.0
    overhead = a.state.metrics.snapshot()["d/m/0-0"].overhead_ms
    assert overhead is not None and overhead >= held_ms
    assert a.state.metrics.requests()["d"].p50_ms >= held_ms
