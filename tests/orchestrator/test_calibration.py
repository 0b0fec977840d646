"""A device's speed calibrated from measured compute times (orchestrator/calibration.py),
and the scenario built with it."""

from __future__ import annotations

import pytest

from orchestrator.calibration import (
    ENOUGH_REQUESTS,
    PRIOR_REQUESTS,
    Timing,
    VariantRatio,
    calibrated_gflops,
    calibrated_overhead,
    model_factors,
    partition_work,
    prior_weight,
    scaled,
    timings,
    variant_factors,
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
    assert [prior_weight(n) for n in (0, ENOUGH_REQUESTS // 2, ENOUGH_REQUESTS, 10_000)] == [
        PRIOR_REQUESTS, PRIOR_REQUESTS / 2, 0.0, 0.0,
    ]  # fmt: skip
    # Measured: 1 GFLOP in 40 ms, 25 GFLOP/s (the prior: 50, 0.02 s per GFLOP). On half
    # the requests that are enough, the prior weighs half its worth: 10 against 32.
    n = ENOUGH_REQUESTS // 2
    half, _ = calibrated_gflops(50.0, [Timing(1.0, 40.0, n)])
    assert half == pytest.approx((10 + n) / (10 * 0.02 + n * 0.04), rel=1e-3)
    # Enough requests: the measurement alone, not pulled back towards the prior.
    enough, _ = calibrated_gflops(50.0, [Timing(1.0, 40.0, ENOUGH_REQUESTS)])
    assert enough == 25.0


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
    assert factors["slow"] == 3.0  # enough requests: the prior is gone
    few = model_factors([(Timing(1.0, 30.0, 16, "slow"), 100.0)])
    assert few["slow"] == pytest.approx((15 + 16 * 3.0) / (15 + 16), rel=1e-3)
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
    assert calibrated_overhead(metrics) == 4.0  # 70 requests: enough, the prior is gone
    # Fewer: 0 weighs as 20 * (1 - 40/64) = 7.5 requests against 40.
    metrics["d/m/0-1"].update(overhead_count=30)
    assert calibrated_overhead(metrics) == pytest.approx(40 * 4.0 / (7.5 + 40), rel=1e-3)
    # Every request served counts, not only the 64 the figure is taken over.
    metrics["d/m/0-1"].update(requests=2000, overhead_count=30)
    assert calibrated_overhead(metrics) == 4.0


def test_the_prior_fades_with_every_request_served_not_the_window() -> None:
    beat = {"d/m/0-3": {"requests": 5000, "recent_ms": 100.0, "recent_count": 64}}
    (timed,) = timings(beat, {"m": MODEL}, lambda dep, k: None)
    assert timed.requests == 5000
    speed, _ = calibrated_gflops(50.0, [timed])
    assert speed == pytest.approx(timed.gflop / 0.1, rel=1e-3)  # the prior: nothing of it


def test_an_int8_variant_follows_its_source_until_its_device_confirms_its_ratio() -> None:
    # Made on the control plane's host, the variant ran at 0.5x its source's time; its
    # layers are its source's GFLOP times 0.5 (profiled.variant_layers). The source runs
    # at 2x its FLOPs' cost on a 100 GFLOP/s device.
    variants = {"m-int8": ("m", 0.5)}
    source = (Timing(1.0, 20.0, 200, "m"), 100.0)
    factors = model_factors([source])
    assert factors["m"] == 2.0
    # Not served yet: costed as its source is, calibrated factor included, at 0.5.
    out, ratios = variant_factors(variants, [source], factors)
    assert out["m-int8"] == 2.0 and out["m"] == 2.0
    assert ratios["m-int8"] == VariantRatio("m", 0.5, None, 0, 0.5)
    # Served on the device for enough requests, where int8 is slower than fp32: 0.5
    # GFLOP of layers in 60 ms, 3x the source's 20 ms for its 1 GFLOP.
    ran = [source, (Timing(0.5, 60.0, ENOUGH_REQUESTS, "m-int8"), 100.0)]
    out, ratios = variant_factors(variants, ran, model_factors(ran))
    assert ratios["m-int8"] == VariantRatio("m", 0.5, 3.0, ENOUGH_REQUESTS, 3.0)
    assert out["m-int8"] == 12.0  # 0.5 GFLOP at 12x: 6 GFLOP-equivalents, 60 ms at 100
    # On half the requests that are enough: halfway (the prior weighs 10 against 32).
    n = ENOUGH_REQUESTS // 2
    ran = [source, (Timing(0.5, 60.0, n, "m-int8"), 100.0)]
    _, ratios = variant_factors(variants, ran, model_factors(ran))
    assert ratios["m-int8"].devices == 3.0
    assert ratios["m-int8"].planned == pytest.approx((10 * 0.5 + n * 3.0) / (10 + n), rel=1e-3)


def test_the_scenario_costs_a_variant_by_its_devices_ratio() -> None:
    model = {**MODEL, "exits": []}  # four blocks of 0.1 GFLOP
    variant = {
        **model,
        "id": "m8",
        "layers": [{**b, "gflops": b["gflops"] * 0.5} for b in model["layers"]],
    }
    deployments = [
        {"id": "d1", "model": "m", "source": "cam", "rate_rps": 1.0},
        {"id": "d2", "model": "m8", "source": "cam", "rate_rps": 1.0},
    ]
    # Quantized at half the time; on this device the variant takes 60 ms, 3x its source.
    beat = {"metrics": {
        "d1/m/0-3": {"requests": 500, "recent_ms": 20.0, "recent_count": 64},
        "d2/m8/0-3": {"requests": 500, "recent_ms": 60.0, "recent_count": 64},
    }}  # fmt: skip
    snap = Snapshot(devices=[_camera()], models={"m": model, "m8": variant},
                    deployments=deployments, placement=PLACEMENT,
                    variants={"m8": ("m", 0.5)})  # fmt: skip
    built = build(snap, {"cam": beat}, {})
    assert built.variant_ratios["m8"] == VariantRatio("m", 0.5, 3.0, 500, 3.0)
    speed = built.scenario["devices"][0]["gflops"]
    totals = {m["id"]: sum(b["gflops"] for b in m["layers"]) for m in built.scenario["models"]}
    assert totals["m8"] / totals["m"] == pytest.approx(3.0)
    assert totals["m8"] / speed * 1000.0 == pytest.approx(60.0)  # as the device timed it
    parse_scenario(built.scenario)
