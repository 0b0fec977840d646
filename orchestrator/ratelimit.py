"""Rate limits: token buckets per key (a source address) and one for all keys together.

Used on enrollment, the one route a stranger can call with a guessed token: a guess costs
one attempt whatever its outcome, so brute force runs at the rate set here, and a flood
from many addresses is capped by the global bucket. In-process, per replica: N replicas
admit up to N times the global rate, which still bounds a flood.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Sources tracked at once; beyond it the fullest buckets (idle sources) are forgotten, so
# a flood of spoofed or IPv6 addresses cannot grow memory without bound.
MAX_SOURCES = 10_000


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimited(Exception):
    """Over the limit; try again after `retry_after_s` seconds."""

    def __init__(self, scope: str, retry_after_s: float) -> None:
        super().__init__(scope)
        self.scope = scope
        self.retry_after_s = retry_after_s


class RateLimit:
    """`per_source` attempts per `window_s` from one key, `total` from all of them;
    bursts up to those counts, refilled evenly over the window."""

    def __init__(
        self,
        per_source: int,
        total: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_source = per_source
        self.total = total
        self.window_s = window_s
        self._clock = clock
        self._sources: dict[str, _Bucket] = {}
        self._all = _Bucket(float(total), clock())

    def take(self, source: str) -> None:
        """Count one attempt from `source`, or raise RateLimited without counting it."""
        now = self._clock()
        bucket = self._sources.get(source)
        if bucket is None:
            if len(self._sources) >= MAX_SOURCES:
                self._forget_idle(now)
            bucket = self._sources[source] = _Bucket(float(self.per_source), now)
        mine = self._refill(bucket, self.per_source, now)
        everyone = self._refill(self._all, self.total, now)
        if mine < 1.0:
            raise RateLimited("source", self._wait(mine, self.per_source))
        if everyone < 1.0:
            raise RateLimited("global", self._wait(everyone, self.total))
        bucket.tokens -= 1.0
        self._all.tokens -= 1.0

    def _refill(self, bucket: _Bucket, capacity: int, now: float) -> float:
        rate = capacity / self.window_s
        bucket.tokens = min(float(capacity), bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        return bucket.tokens

    def _wait(self, tokens: float, capacity: int) -> float:
        return (1.0 - tokens) * self.window_s / capacity

    def _forget_idle(self, now: float) -> None:
        full = [
            key
            for key, bucket in self._sources.items()
            if self._refill(bucket, self.per_source, now) >= self.per_source
        ]
        for key in full:
            del self._sources[key]
        if len(self._sources) >= MAX_SOURCES:  # all busy: drop the oldest half
            for key in list(self._sources)[: MAX_SOURCES // 2]:
                del self._sources[key]


def retry_after_header(seconds: float) -> str:
    """Retry-After takes whole seconds; round up so a client that obeys it gets through."""
    return str(max(1, math.ceil(seconds)))
