"""The memory rule of a link end's estimate (orchestrator/live/links.py), on given times:
the backends' suite (test_live_state_links.py) cannot wait a minute for a silence."""

from __future__ import annotations

import math

import pytest

from orchestrator.live.links import MIN_WEIGHT, TAU_S, bottleneck, planned, remember, weight


def test_the_weight_grows_with_the_estimate_s_age() -> None:
    assert weight(0.0) == MIN_WEIGHT
    assert weight(-5.0) == MIN_WEIGHT  # a clock gone backwards counts as no age
    assert weight(TAU_S) == pytest.approx(1 - (1 - MIN_WEIGHT) / math.e)
    assert weight(60.0) > 0.93 and weight(600.0) > 0.999999


def test_a_measurement_after_a_minute_s_silence_all_but_replaces_the_estimate() -> None:
    degraded = remember(None, 0.2, 30.0, at=1000.0, fresh_s=3.0)
    assert (degraded["mbps"], degraded["rtt_ms"]) == (0.2, 30.0)
    recovered = remember(degraded, 50.0, 4.0, at=1060.0, fresh_s=3.0)
    assert recovered["mbps"] == pytest.approx(0.2 + weight(60.0) * 49.8)
    assert recovered["mbps"] > 46.0
    assert (recovered["last_mbps"], recovered["at"]) == (50.0, 1060.0)


def test_reports_a_heartbeat_apart_converge_in_a_few_beats() -> None:
    estimate = remember(None, 50.0, 4.0, at=0.0, fresh_s=3.0)
    for beat in range(1, 5):
        estimate = remember(estimate, 2.0, 4.0, at=float(beat), fresh_s=3.0)
    assert 2.0 < estimate["mbps"] < 2.0 + 48.0 * 0.5**4 + 1e-9


def test_freshness_and_age_are_those_of_the_newest_report() -> None:
    old = remember(None, 0.2, 30.0, at=0.0, fresh_s=3.0)
    new = remember(None, 300.0, 2.0, at=100.0, fresh_s=3.0)
    figure = bottleneck([old, new], now=101.0)
    assert (figure["mbps"], figure["rtt_ms"], figure["age_s"], figure["fresh"]) == (
        0.2, 30.0, 1.0, True,
    )  # fmt: skip
    assert bottleneck([old], now=101.0)["fresh"] is False


def test_what_the_solver_uses() -> None:
    declared = {"mbps": 50.0, "rtt_ms": 4.0}
    assert planned(declared, None) == {"mbps": 50.0, "rtt_ms": 4.0, "source": "declared"}
    fresh = {"mbps": 900.0, "rtt_ms": 0.3, "fresh": True}
    assert planned(declared, fresh) == {"mbps": 50.0, "rtt_ms": 0.3, "source": "measured"}
    stale = {"mbps": 0.2, "rtt_ms": 30.0, "fresh": False}
    assert planned(declared, stale) == {"mbps": 0.2, "rtt_ms": 30.0, "source": "remembered"}
    assert planned(None, stale) is None
    assert planned(None, fresh) == {"mbps": 900.0, "rtt_ms": 0.3, "source": "measured"}
