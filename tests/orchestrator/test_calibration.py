"""A device's speed calibrated from measured compute times (orchestrator/calibration.py),
and the scenario built with it."""

from __future__ import annotations

import pytest

from orchestrator.calibration import (
    PRIOR_REQUESTS,
    Timing,
    calibrated_gflops,
    calibrated_overhead,
    model_factors,
    partition_work,
    scaled,
    timings,
)
from orchestrator.learned import gather, learned_model
from orchestrator.scenario_builder import Snapshot, build
from solver import parse_scenario
from tests.orchestrator.test_learned import MODEL
from tests.orchestrator.test_scenario_builder import PLACEMENT, _camera


def test_partition_work_weighs_blocks_and_heads_by_their_reach() -> None:
    # b0 (0.1) + head after b0 (0.01); half go on: b1 and b2 at 0.5, head after b2 at 0.5.
    assert partition_work(MODEL, 0, 2) == pytest.approx(0.1 + 0.01 + 0.5 * (0.1 + 0.1 + 0.01))
    assert partition_work(MODEL, 3, 3) == pytest.approx(0.1)


def test_timings_from_a_heartbeat() -> None:
    metrics = {
        "d/m/0-3": {"requests": 9, "recent_ms": 12.5, "recent_count": 9},
        "c/stage1": {"requests": 4, "recent_ms": 8.0, "recent_count": 4},
        "d/m/0-1": {"requests": 0, "recent_ms": None, "recent_count": 0},  # nothing yet
        "d/gone/0-1": {"requests": 3, "recent_ms": 1.0, "recent_count": 3},  # unknown model
    }
    got = timings(metrics, {"m": MODEL}, lambda dep, k: "m" if (dep, k) == ("c", 1) else None)
    assert got == [
        Timing(partition_work(MODEL, 0, 3), 12.5, 9, "m"),
        Timing(0.4, 8.0, 4, "m"),  # a stage runs every block of its model
    ]


def test_no_timing_keeps_the_prior_and_evidence_takes_over_as_it_grows() -> None:
    assert calibrated_gflops(50.0, []) == (50.0, 0)
    # Measured: 1 GFLOP in 40 ms, 25 GFLOP/s; as many requests as the prior is worth:
    # halfway in time per GFLOP (0.02 and 0.04 s): 1 / 0.03.
    half, _ = calibrated_gflops(50.0, [Timing(1.0, 40.0, int(PRIOR_REQUESTS))])
    assert half == pytest.approx(1 / 0.03, rel=1e-3)
    most, _ = calibrated_gflops(50.0, [Timing(1.0, 40.0, 10_000)])
    assert most == pytest.approx(25.0, rel=1e-2)


def test_a_misbehaving_partition_moves_the_median_little() -> None:
    steady = [Timing(1.0, 10.0, 64), Timing(2.0, 20.0, 64)]  # both 100 GFLOP/s
    stalled = Timing(0.5, 5_000.0, 30)  # one stalled partition, fewer requests
    speed, _ = calibrated_gflops(100.0, [*steady, stalled])
    assert speed == pytest.approx(100.0)


@pytest.mark.parametrize("ms", [0.0, 1e-9, 1e12])
def test_impossible_speeds_are_dropped_and_counted(ms: float) -> None:
    assert calibrated_gflops(50.0, [Timing(1.0, ms, 64)]) == (50.0, 1)


def test_the_scenario_calibrates_real_devices_and_leaves_emulated_ones() -> None:
    deployments = [{"id": "d", "model": "m", "source": "cam", "rate_rps": 1.0}]
    beat = {"metrics": {"d/m/0-3": {"requests": 500, "recent_ms": 100.0, "recent_count": 64}}}
    for emulated, want in ((False, None), (True, 5.0)):
        snap = Snapshot(devices=[_camera(emulated=emulated)], models={"m": MODEL},
                        deployments=deployments, placement=PLACEMENT)  # fmt: skip
        built = build(snap, {"cam": beat}, {})
        (device,) = built.scenario["devices"]
        if want is None:
            # With the exit rates learned from the same heartbeat (500 requests, no exit).
            learned = learned_model(MODEL, gather({"cam": beat}, {"m": MODEL}))
            work = partition_work(learned, 0, 3)
            assert work > partition_work(MODEL, 0, 3)
            # The evidence weighs as the 500 requests served, not the 64 timed.
            expected, _ = calibrated_gflops(5.0, [Timing(work, 100.0, 500)])
            assert device["gflops"] == expected != 5.0
        else:
            assert device["gflops"] == want
        parse_scenario(built.scenario)


def test_a_model_slower_per_flop_than_the_device_gets_a_cost_factor() -> None:
    # Two models on a 100 GFLOP/s device: one runs at that speed, one at a third of it.
    evidence = [(Timing(1.0, 10.0, 64, "fast"), 100.0), (Timing(1.0, 30.0, 64, "slow"), 100.0)]
    factors = model_factors(evidence)
    assert factors["fast"] == pytest.approx(1.0)
    assert factors["slow"] == pytest.approx((20 + 64 * 3.0) / (20 + 64), rel=1e-3)
    assert model_factors([(Timing(1.0, 0.0, 5, "x"), 100.0)]) == {}  # nothing usable
    entry = scaled(MODEL, 2.0)
    assert [b["gflops"] for b in entry["layers"]] == [0.2] * 4
    assert [e["gflops"] for e in entry["exits"]] == [0.02, 0.02]
    assert scaled(MODEL, 1.0) is MODEL


def test_overhead_is_the_weighted_median_blended_with_zero() -> None:
    assert calibrated_overhead({}) == 0.0
    metrics = {
        "d/m/0-1": {"overhead_ms": 4.0, "overhead_count": 60},
        "e/m/0-1": {"overhead_ms": 90.0, "overhead_count": 10},  # a few slow ones
        "f/m/0-1": {"overhead_ms": None, "overhead_count": 0},
    }
    assert calibrated_overhead(metrics) == pytest.approx(70 * 4.0 / (20 + 70), rel=1e-3)
    # The prior fades as requests accumulate, beyond the 64 the figure is taken over.
    metrics["d/m/0-1"].update(requests=2000, overhead_count=64)
    assert calibrated_overhead(metrics) == pytest.approx(2010 * 4.0 / (20 + 2010), rel=1e-3)


def test_the_prior_fades_with_every_request_served_not_the_window() -> None:
    beat = {"d/m/0-3": {"requests": 5000, "recent_ms": 100.0, "recent_count": 64}}
    (timed,) = timings(beat, {"m": MODEL}, lambda dep, k: None)
    assert timed.requests == 5000
    speed, _ = calibrated_gflops(50.0, [timed])
    assert speed == pytest.approx(timed.gflop / 0.1, rel=1e-2)  # the prior is 0.4% of it
