"""Exit and escalation rates learned from the agents' counts (orchestrator/learned.py),
and the scenario built with them."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.learned import PRIOR_REQUESTS, Evidence, blend, gather, learned_model
from orchestrator.scenario_builder import Snapshot, build
from solver import parse_scenario
from tests.orchestrator.test_scenario_builder import PLACEMENT, _camera

MODEL = {
    "id": "m", "input_mb": 0.1,
    "layers": [{"name": f"b{i}", "gflops": 0.1, "params_mb": 1.0, "out_mb": 0.1}
               for i in range(4)],
    "exits": [{"after": "b0", "prob": 0.5, "gflops": 0.01, "params_mb": 0.1},
              {"after": "b2", "prob": 0.2, "gflops": 0.01, "params_mb": 0.1}],
}  # fmt: skip


def _metrics(requests: int, exits: dict[str, int]) -> dict[str, Any]:
    return {"requests": requests, "exits": exits}


def test_a_head_is_reached_by_what_the_heads_before_it_in_its_partition_did_not_answer() -> None:
    beats = {
        # b0..b2 on the camera: 100 in, 30 end at b0, 14 of the 70 left end at b2.
        "cam": {"metrics": {"d/m/0-2": _metrics(100, {"b0": 30, "b2": 14})}},
        # A second deployment of the same model, split after b0 on two devices.
        "a": {"metrics": {"e/m/0-0": _metrics(50, {"b0": 10})}},
        "b": {"metrics": {"e/m/1-3": _metrics(40, {"b2": 8})}},
    }
    evidence = gather(beats, {"m": MODEL})
    assert evidence.heads[("m", "b0")] == Evidence(reached=150, fired=40)
    assert evidence.heads[("m", "b2")] == Evidence(reached=110, fired=22)
    assert evidence.dropped == 0


def test_cascade_stages_count_per_deployment_and_stage() -> None:
    beats = {
        "cam": {"metrics": {"c/stage0": _metrics(60, {"stage": 27})}},
        "edge": {"metrics": {"c/stage1": _metrics(33, {})}},
    }
    evidence = gather(beats, {})
    assert evidence.stages == {("c", 0): Evidence(60, 27), ("c", 1): Evidence(33, 0)}


@pytest.mark.parametrize(
    "metrics",
    [
        {"d/m/0-2": _metrics(10, {"b0": 11})},  # more answers than requests
        {"d/m/0-2": _metrics(10, {"b0": 6, "b2": 5})},  # more at b2 than reached it
        {"d/m/x-2": _metrics(10, {})},  # not a block range
        {"c/stage0": _metrics(5, {"stage": 9})},
    ],
)
def test_counts_that_contradict_themselves_are_dropped(metrics: dict[str, Any]) -> None:
    evidence = gather({"cam": {"metrics": metrics}}, {"m": MODEL})
    assert evidence.dropped == 1 and not evidence.heads and not evidence.stages


def test_the_declared_rate_is_a_prior_worth_twenty_requests() -> None:
    assert blend(0.5, None) == 0.5
    assert blend(0.5, Evidence(0, 0)) == 0.5
    assert blend(0.5, Evidence(20, 0)) == 0.25  # as much evidence as prior: halfway
    assert blend(0.5, Evidence(100_000, 10_000)) == pytest.approx(0.1, abs=1e-4)
    assert PRIOR_REQUESTS == 20.0


def test_the_scenario_uses_learned_rates_and_stays_a_valid_replay() -> None:
    deployments = [
        {"id": "d", "model": "m", "source": "cam", "rate_rps": 1.0},
        {"id": "c", "cascade": [{"model": "m", "exit_prob": 0.7}, {"model": "m"}],
         "source": "cam", "rate_rps": 1.0},
    ]  # fmt: skip
    snap = Snapshot(devices=[_camera()], models={"m": MODEL}, deployments=deployments,
                    placement=PLACEMENT)  # fmt: skip
    beats = {"cam": {"metrics": {
        "d/m/0-3": _metrics(80, {"b0": 8, "b2": 36}),
        "c/stage0": _metrics(80, {"stage": 16}),
    }}}  # fmt: skip
    built = build(snap, beats, {})
    (model,) = built.scenario["models"]
    assert [e["prob"] for e in model["exits"]] == [
        round((20 * 0.5 + 8) / (20 + 80), 4),
        round((20 * 0.2 + 36) / (20 + 72), 4),
    ]
    cascade = built.scenario["apps"][1]["cascade"]
    assert cascade == [{"model": "m", "exit_prob": round((20 * 0.7 + 16) / 100, 4)},
                       {"model": "m"}]  # fmt: skip
    assert MODEL["exits"][0]["prob"] == 0.5  # the snapshot itself is not changed
    parse_scenario(built.scenario)  # what GET /v1/scenario shows replays as is
    assert learned_model({"id": "x", "layers": []}, gather({}, {})) == {"id": "x", "layers": []}
