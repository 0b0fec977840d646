"""Triggers fire on sustained changes, not on one noisy sample."""

from __future__ import annotations

from orchestrator.triggers import BatteryWatch, LinkWatch


def test_one_noisy_sample_does_not_fire() -> None:
    w = LinkWatch(alpha=0.5, threshold=0.3)
    assert w.observe("cam", "edge", 50.0, 5.0, 0.0) is None
    assert w.observe("cam", "edge", 30.0, 5.0, 1.0) is None  # -40%, smoothed to -20%
    assert w.observe("cam", "edge", 50.0, 5.0, 2.0) is None


def test_sustained_drop_fires_with_reason() -> None:
    w = LinkWatch(alpha=0.5, threshold=0.3)
    w.observe("cam", "edge", 50.0, 5.0, 0.0)
    fired = [w.observe("edge", "cam", 2.0, 5.0, float(t)) for t in range(1, 4)]
    first = next(t for t in fired if t is not None)
    assert first.kind == "link" and first.target == "cam~edge"
    assert "50.0 ->" in first.reason
    assert fired[0] is not None  # 50 -> 26: the first sample already moved 48%


def test_commit_resets_the_baseline() -> None:
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("a", "b", 50.0, 5.0, 0.0)
    assert w.observe("a", "b", 10.0, 5.0, 1.0) is not None
    w.commit()
    assert w.observe("a", "b", 11.0, 5.0, 2.0) is None


def test_rtt_jitter_below_floor_is_ignored() -> None:
    w = LinkWatch(alpha=1.0, threshold=0.3)
    w.observe("a", "b", 50.0, 0.4, 0.0)
    assert w.observe("a", "b", 50.0, 0.9, 1.0) is None  # 0.5 ms on a 2 ms floor
    assert w.observe("a", "b", 50.0, 40.0, 2.0) is not None


def test_battery_projection_fires_once_within_horizon() -> None:
    w = BatteryWatch(horizon_h=8.0, window_s=60.0)
    assert w.observe("cam", 80.0, 20.0, False, 0.0) is None
    # 1% a minute: 60%/h, 60 points above min -> 1 h, within 8 h.
    t = w.observe("cam", 79.0, 20.0, False, 60.0)
    assert t is not None and t.kind == "battery" and "horizon" in t.reason
    assert w.observe("cam", 78.0, 20.0, False, 120.0) is None  # already low: once
    proj = w.projected_h("cam", 20.0)
    assert proj is not None and 0.9 < proj < 1.1


def test_slow_drain_does_not_fire() -> None:
    w = BatteryWatch(horizon_h=8.0, window_s=3600.0)
    w.observe("cam", 80.0, 20.0, False, 0.0)
    # 1% an hour: 60 h to min.
    assert w.observe("cam", 79.0, 20.0, False, 3600.0) is None


def test_charging_transitions_fire() -> None:
    w = BatteryWatch()
    assert w.observe("cam", 50.0, 20.0, False, 0.0) is None
    t = w.observe("cam", 50.0, 20.0, True, 1.0)
    assert t is not None and t.kind == "charging" and "started" in t.reason
    t = w.observe("cam", 51.0, 20.0, False, 2.0)
    assert t is not None and "stopped" in t.reason
