from __future__ import annotations

import random

import pytest

from agents.client import Backoff


def test_delays_grow_exponentially_within_jittered_bounds() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, factor=2.0, rng=random.Random(1))
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling


def test_never_above_the_cap_even_after_a_long_outage() -> None:
    backoff = Backoff(base_s=1.0, cap_s=10.0, rng=random.Random(2))
    delays = [backoff.next_delay() for _ in range(2000)]
    assert max(delays) <= 10.0
    assert min(delays[10:]) >= 5.0


def test_jitter_spreads_a_fleet() -> None:
    fleet = [Backoff(rng=random.Random(seed)) for seed in range(50)]
    for backoff in fleet:
        for _ in range(4):
            backoff.next_delay()
    fifth = {round(b.next_delay(), 6) for b in fleet}
    assert len(fifth) == 50


def test_reset_starts_over() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0, rng=random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.parametrize(("base", "cap", "factor"), [(0, 1, 2), (2, 1, 2), (1, 2, 0.5)])
def test_nonsense_parameters_are_refused(base: float, cap: float, factor: float) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(base, cap, factor)
