"""A cascade stage without a threshold answers at its declared rate (agents/escalation.py):
the gate alone, then a real two-stage cascade on two data planes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from agents.escalation import RateGate
from agents.runtime import load_stage
from api.wire import CascadeStageSpec, DesiredState, Endpoint, NextHop
from tests.agents.test_dataplane import PART_A, TOKEN, WHOLE, Node, _first_stage, _infer, _ref


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 0.7, 1.0])
def test_the_gate_answers_at_its_rate_on_continuous_confidences(rate: float) -> None:
    gate = RateGate(rate, seed="s")
    draws = np.random.default_rng(1).uniform(0.3, 0.9, 4000)
    answered = sum(gate.confident(float(c)) for c in draws)
    assert abs(answered / len(draws) - rate) < 0.03, answered


def test_the_gate_answers_the_most_confident_inputs() -> None:
    gate = RateGate(0.5, seed="s")
    for c in np.random.default_rng(2).uniform(0, 1, 256):
        gate.confident(float(c))
    assert gate.confident(0.999) and not gate.confident(0.001)


def test_ties_are_broken_at_random_so_a_constant_confidence_keeps_the_rate() -> None:
    # A model whose confidence never changes must not answer all or nothing.
    gate = RateGate(0.3, seed="s")
    answered = sum(gate.confident(0.6) for _ in range(3000))
    assert abs(answered / 3000 - 0.3) < 0.03, answered


def test_the_window_follows_drifting_inputs() -> None:
    gate = RateGate(0.25, window=100, seed="s")
    rng = np.random.default_rng(3)
    for c in rng.uniform(0.8, 0.9, 500):
        gate.confident(float(c))
    # Every input is now less confident than all before it; once the window holds only
    # the new ones, the stage answers a quarter of them again.
    later = [gate.confident(float(c)) for c in rng.uniform(0.1, 0.2, 2000)]
    assert sum(later[:50]) == 0
    assert abs(sum(later[100:]) / len(later[100:]) - 0.25) < 0.04


def test_nan_escalates_and_a_rate_outside_0_1_is_refused() -> None:
    assert RateGate(1.0).confident(float("nan")) is False
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        RateGate(1.5)


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


def test_a_stage_without_threshold_escalates_at_its_exit_prob(nodes: tuple[Node, Node]) -> None:
    """The cascade of docs/control-plane.md (`exit_prob`, no `threshold`): before, stage 0
    answered every request and stage 1 never ran."""
    a, b = nodes
    whole = WHOLE
    sink = Endpoint(device_id="a", data_plane_url=a.url)
    stage0 = CascadeStageSpec(
        key="d/stage0", deployment="d", index=0, model="small", artifact=_ref(PART_A),
        exit_prob=0.6, threshold=None, sink=sink, data_plane_token=TOKEN,
        next_stage=NextHop(device_id="b", data_plane_url=b.url, key="d/stage1"),
    )  # fmt: skip
    stage1 = CascadeStageSpec(
        key="d/stage1", deployment="d", index=1, model="big", artifact=_ref(whole),
        exit_prob=None, threshold=None, next_stage=None, sink=sink, data_plane_token=TOKEN,
    )  # fmt: skip
    _first_stage(a, stage0)
    b.install(
        DesiredState(device_id="b", version=1, cascade_stages=[stage1]),
        [load_stage(stage1, whole, 1, 10.0)],
    )
    rng = np.random.default_rng(4)
    ends = []
    for _ in range(200):
        response = _infer(a, rng.standard_normal((1, 4)).astype(np.float32))
        assert response.status_code == 200, response.text
        ends.append(json.loads(response.headers["X-Continuum-Trace"])[-1]["partition"])
    escalated = ends.count("d/stage1")
    assert 0.3 * 200 <= escalated <= 0.5 * 200, escalated  # declared: 0.4 of 200
    assert a.state.metrics.snapshot()["d/stage0"].exits == {"stage": 200 - escalated}
    assert b.state.metrics.snapshot()["d/stage1"].requests == escalated
