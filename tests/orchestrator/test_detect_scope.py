"""The leader's detect step walking only what changed (`orchestrator.detect_scope`) fires
exactly what a walk of every device fires.

Two loops watch the same fleet, tick by tick: one is told nothing of what changed (it
walks every device, as before), the other is told the devices whose heartbeat was written,
forgotten or expired since its last tick, as the mirror tells the real leader. A seeded
random fleet beats, falls quiet, comes back, is forgotten, reports next hops unreachable
and drains its batteries; every tick both must fire the same triggers, in the same order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator.detect_scope import DetectScope
from orchestrator.reconcile import LoopConfig, Observation, Reconciler
from orchestrator.triggers import Trigger
from tests.orchestrator.test_reconcile import FakeGateway, FakeMetrics

DEVICES = [f"dev-{k:02d}" for k in range(24)]
KEY = "app/m/0-3"  # a partition with a prediction, so heartbeats' latencies are watched


class Fleet:
    """Heartbeats as the mirror holds them, and the devices changed since the last look."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = 1000.0
        self.beats: dict[str, dict[str, Any]] = {}
        self.changed: set[str] = set()
        self.mode = {d: "beating" for d in DEVICES}
        self.level = {d: 100.0 for d in DEVICES}
        self.requests = {d: 0 for d in DEVICES}
        self.meta = {d: {"battery_min_pct": 20.0 if k % 3 else None} for k, d in enumerate(DEVICES)}

    def step(self) -> None:
        rng = self.rng
        self.now += rng.uniform(0.05, 0.7)
        for device in DEVICES:
            if rng.random() < 0.04:
                self.mode[device] = rng.choice(["beating", "beating", "quiet", "forgotten"])
            mode = self.mode[device]
            if mode == "forgotten":
                if self.beats.pop(device, None) is not None:
                    self.changed.add(device)  # forgotten, or expired from the mirror
                continue
            if mode == "quiet" or rng.random() < 0.3:
                continue  # no heartbeat now: its last one stays, and ages
            self.level[device] = max(0.0, self.level[device] - rng.uniform(0.0, 3.0))
            self.requests[device] += 10
            beat: dict[str, Any] = {
                "at": self.now,
                "battery_pct": self.level[device],
                "charging": rng.random() < 0.1,
                "metrics": {KEY: {"compute_ms": {
                    "count": self.requests[device],
                    "sum_ms": self.requests[device] * rng.choice([10.0, 10.0, 30.0]),
                }}},
            }  # fmt: skip
            if rng.random() < 0.08:
                peer = rng.choice(DEVICES)
                beat["unreachable"] = [{"peer": peer, "at": self.now, "error": "refused"}]
            if rng.random() < 0.01:
                del beat["at"]  # a heartbeat without its time: taken as now
            self.beats[device] = beat
            self.changed.add(device)

    def observe(self, incremental: bool) -> Observation:
        changed = frozenset(self.changed) if incremental else None
        return Observation(self.now, dict(self.beats), {}, self.meta, {KEY: 10.0}, {},
                           changed=changed)  # fmt: skip


def _loop() -> Reconciler:
    # The default grace (lost_after) and a 1 s heartbeat: joins and losses every few ticks.
    return Reconciler(FakeGateway(), LoopConfig(), FakeMetrics())


def _seen(fired: list[Trigger]) -> list[tuple[str, str, str, float]]:
    return [(t.kind, t.target, t.reason, t.observed_at) for t in fired]


@pytest.mark.parametrize("seed", range(8))
def test_walking_the_changed_devices_fires_what_walking_every_device_fires(seed: int) -> None:
    fleet = Fleet(seed)
    every, changed = _loop(), _loop()
    kinds: set[str] = set()
    for tick in range(400):
        fleet.step()
        # Now and then a full read (the mirror's every 10 s): no changes are named.
        incremental = tick % 50 != 49
        expected = every.detect(fleet.observe(incremental=False))
        got = changed.detect(fleet.observe(incremental=incremental))
        fleet.changed.clear()
        assert _seen(got) == _seen(expected), f"tick {tick}"
        assert changed._alive == every._alive
        kinds |= {t.kind for t in expected}
    # The fleet did what the comparison is about: joins, quiet and forgotten devices
    # lost, next hops cut off, batteries and latencies watched.
    assert {"device-joined", "device-lost", "hop-unreachable", "battery", "latency"} <= kinds


def test_a_device_gone_quiet_is_lost_with_no_change_naming_it() -> None:
    gw = FakeGateway()
    loop = Reconciler(gw, LoopConfig(startup_grace_s=0.0), FakeMetrics())
    gw.beat("cam")
    gw.beat("edge")
    loop.detect(Observation(gw.now, dict(gw.beats), {}, {}, {}, {}, changed=None))
    for _ in range(4):  # edge beats on; cam's heartbeat stays as it was, and ages
        gw.now += 1.0
        gw.beat("edge")
        fired = loop.detect(
            Observation(gw.now, dict(gw.beats), {}, {}, {}, {}, changed=frozenset({"edge"}))
        )
    assert [(t.kind, t.target) for t in fired] == [("device-lost", "cam")]


def test_a_device_no_longer_reported_unreachable_joins_again_without_beating() -> None:
    gw = FakeGateway()
    loop = Reconciler(gw, LoopConfig(startup_grace_s=0.0), FakeMetrics())
    gw.beat("cam")
    gw.beat("edge")
    loop.detect(Observation(gw.now, dict(gw.beats), {}, {}, {}, {}))
    gw.now += 0.5
    gw.beat("cam", unreachable=[{"peer": "edge", "at": gw.now, "error": "refused"}])
    fired = loop.detect(
        Observation(gw.now, dict(gw.beats), {}, {}, {}, {}, changed=frozenset({"cam"}))
    )
    assert [(t.kind, t.target) for t in fired] == [("hop-unreachable", "edge")]
    gw.now += 0.5
    gw.beat("cam")  # its report withdrawn; edge has not beaten since
    fired = loop.detect(
        Observation(gw.now, dict(gw.beats), {}, {}, {}, {}, changed=frozenset({"cam"}))
    )
    assert [(t.kind, t.target) for t in fired] == [("device-joined", "edge")]


def test_only_the_changed_devices_are_walked() -> None:
    beats = {d: {"at": 100.0} for d in DEVICES}
    scope = DetectScope()
    scope.begin(beats, frozenset())
    assert scope.to_walk(beats) == DEVICES  # the first tick: everything
    for device in DEVICES:
        scope.alive_at(device, 100.0, None)
    alive = dict.fromkeys(DEVICES, 100.0)
    assert scope.to_check(alive, 101.0, 3.0) == DEVICES
    beats["dev-03"] = {"at": 101.5}
    scope.begin(beats, frozenset({"dev-03"}))
    assert scope.to_walk(beats) == ["dev-03"]
    assert scope.to_check(alive, 101.5, 3.0) == ["dev-03"]
    scope.fail()  # a tick that did not finish: the next walks everything again
    scope.begin(beats, frozenset())
    assert scope.to_walk(beats) == DEVICES
