"""`simulate.probes`: the traced links as the agents measure them, every `probe_s`."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest

from agents.settings import AgentSettings
from simulate.inputs import PROBE_S
from simulate.probes import ProbeClock

KEYS = [("cam-1", "edge-a"), ("cam-2", "edge-a"), ("edge-a", "cloud")]


def _times(clock: ProbeClock, seconds: int, step: float = 1.0) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for k in range(int(seconds / step)):
        t = k * step
        for key in clock.probe(t, {key: t for key in KEYS}, frozenset()):
            out[key].append(t)
    return out


def test_the_default_is_the_agents_probe_interval() -> None:
    assert AgentSettings.model_fields["probe_interval_s"].default == PROBE_S


def test_every_link_at_the_start_then_once_per_interval_at_a_phase_of_its_own() -> None:
    times = _times(ProbeClock(KEYS, 30.0, seed=0), 300)
    assert set(times) == set(KEYS)
    for key, ts in times.items():
        assert ts[0] == 0.0, key
        assert len(ts) == 11, (key, ts)  # the start, then one every 30 s of 300
        gaps = {b - a for a, b in itertools.pairwise(ts[1:])}
        assert gaps == {30.0}, (key, ts)
        assert 0 < ts[1] <= 30, (key, ts)
    assert len({ts[1] for ts in times.values()}) > 1  # not all at once


def test_the_phases_follow_the_seed() -> None:
    first = {k: ts[1] for k, ts in _times(ProbeClock(KEYS, 30.0, seed=0), 60).items()}
    again = {k: ts[1] for k, ts in _times(ProbeClock(KEYS, 30.0, seed=0), 60).items()}
    other = {k: ts[1] for k, ts in _times(ProbeClock(KEYS, 30.0, seed=1), 60).items()}
    assert first == again
    assert first != other


def test_a_probe_measures_the_figure_of_its_step_and_is_kept() -> None:
    clock = ProbeClock(KEYS, 30.0, seed=0)
    clock.probe(0.0, dict.fromkeys(KEYS, 10.0), frozenset())
    for k in range(1, 31):
        got = clock.probe(float(k), dict.fromkeys(KEYS, 10.0 + k), frozenset())
        for key, mbps in got.items():
            assert mbps == 10.0 + k, key
    # Each link probed once more in (0, 30]: what it measured then is its figure now.
    assert all(10.0 < clock.measured[key] <= 40.0 for key in KEYS), clock.measured


def test_a_device_down_probes_nothing_and_probes_as_it_comes_back() -> None:
    clock = ProbeClock(KEYS, 30.0, seed=0)
    figures = dict.fromkeys(KEYS, 5.0)
    assert set(clock.probe(0.0, figures, frozenset({"cam-1"}))) == set(KEYS[1:])
    seen = set()
    for k in range(1, 45):
        seen |= set(clock.probe(float(k), figures, frozenset({"cam-1"})))
    assert KEYS[0] not in seen and KEYS[0] not in clock.measured
    back = clock.probe(45.0, {**figures, KEYS[0]: 7.0}, frozenset(), joined=frozenset({"cam-1"}))
    assert back[KEYS[0]] == 7.0


def test_steps_longer_than_the_interval_probe_each_link_once_a_step() -> None:
    times = _times(ProbeClock(KEYS, 30.0, seed=0), 600, step=120.0)
    assert all(ts == [0.0, 120.0, 240.0, 360.0, 480.0] for ts in times.values()), times


def test_an_interval_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="probe_s"):
        ProbeClock(KEYS, 0.0, seed=0)
