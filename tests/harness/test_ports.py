"""The test workers' listening ports."""

from __future__ import annotations

import pytest

from tests.harness import ports


def test_each_xdist_worker_hands_out_ports_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        share = ports._share()
        assert all(share[0] <= ports.free_port() < share[1] for _ in range(20))
        shares.append(share)
    (a0, a1), (b0, b1) = shares
    assert a1 <= b0 and (a0, b1) == ports.LISTEN_PORTS
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert ports._share() == ports.LISTEN_PORTS  # a benchmark, or a run without workers
