"""Token buckets per source and for everyone, on a clock the test turns by hand."""

from __future__ import annotations

import pytest

from orchestrator import ratelimit
from orchestrator.ratelimit import RateLimit, RateLimited, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    limit = RateLimit(per_source=3, total=100, window_s=60.0, clock=clock)
    for _ in range(3):
        limit.take("10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        limit.take("10.0.0.1")
    assert refused.value.scope == "source"
    assert refused.value.retry_after_s == pytest.approx(20.0)  # one attempt per 20 s
    limit.take("10.0.0.2")  # another source is not held back
    clock.now += 20.0
    limit.take("10.0.0.1")
    with pytest.raises(RateLimited):
        limit.take("10.0.0.1")


def test_the_global_bucket_caps_many_sources() -> None:
    clock = Clock()
    limit = RateLimit(per_source=5, total=4, window_s=10.0, clock=clock)
    for k in range(4):
        limit.take(f"10.0.0.{k}")
    with pytest.raises(RateLimited) as refused:
        limit.take("10.0.0.99")
    assert refused.value.scope == "global"
    assert refused.value.retry_after_s == pytest.approx(2.5)


def test_a_refused_attempt_is_not_counted() -> None:
    clock = Clock()
    limit = RateLimit(per_source=1, total=100, window_s=60.0, clock=clock)
    limit.take("a")
    for _ in range(5):
        with pytest.raises(RateLimited):
            limit.take("a")
    clock.now += 60.0
    limit.take("a")


def test_memory_stays_bounded_under_a_flood_of_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_SOURCES", 100)
    limit = RateLimit(per_source=2, total=10**9, window_s=60.0, clock=Clock())
    for k in range(1000):
        limit.take(f"2001:db8::{k:x}")
    assert len(limit._sources) <= 100


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(2.1) == "3"
