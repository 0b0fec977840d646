"""Per-partition latency histograms and observed exit rates, for the heartbeats.

Counts are cumulative since the agent started (as Prometheus counters are), so a lost
heartbeat loses nothing: the control plane takes differences between two heartbeats.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass, field

from api.wire import LatencyHistogram, PartitionMetrics, RequestLatency

# Bucket upper bounds in ms: fine below 10 ms where hops live, coarse up to 10 s.
BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000,
)  # fmt: skip


RECENT = 64  # compute times kept per partition for `recent_ms`
# The fraction left out at each end: the interquartile mean. On a shared machine more
# than a tenth of the requests can stall for several times their usual time; leaving
# out a tenth at each end still let them pull the figure above what most requests took.
TRIM = 0.25


def trimmed_mean(values: list[float]) -> float | None:
    """The mean without the lowest and highest TRIM of the values (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    cut = int(len(ordered) * TRIM)
    kept = ordered[cut : len(ordered) - cut] or ordered
    return sum(kept) / len(kept)


@dataclass
class _Stats:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BOUNDS_MS) + 1))
    count: int = 0
    sum_ms: float = 0.0
    exits: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    overhead: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, _Stats] = {}
        self.busy_s = 0.0  # compute seconds (emulated when emulating), for utilization
        self.overhead_dropped = 0
        # deployment -> (requests served as its source, their latest end-to-end ms)
        self._requests: dict[str, tuple[int, deque[float]]] = {}

    def observe(self, key: str, compute_ms: float, exit_taken: str | None = None) -> None:
        with self._lock:
            stats = self._stats.setdefault(key, _Stats())
            stats.counts[bisect.bisect_left(BOUNDS_MS, compute_ms)] += 1
            stats.count += 1
            stats.sum_ms += compute_ms
            stats.recent.append(compute_ms)
            if exit_taken is not None:
                stats.exits[exit_taken] = stats.exits.get(exit_taken, 0) + 1
            self.busy_s += compute_ms / 1000.0

    def observe_overhead(self, key: str, overhead_ms: float) -> None:
        """A request's time here beyond compute and the hops after it: receiving,
        decoding, framing, answering. A figure below -1 ms (clocks that disagree) is
        dropped and counted; rounding's small negatives count as 0."""
        with self._lock:
            stats = self._stats.setdefault(key, _Stats())
            if not overhead_ms >= -1.0:  # NaN too
                self.overhead_dropped += 1
                return
            stats.overhead.append(max(overhead_ms, 0.0))

    def observe_request(self, deployment: str, ms: float) -> None:
        """One request served as the deployment's source, end to end here."""
        with self._lock:
            count, recent = self._requests.get(deployment, (0, deque(maxlen=RECENT * 4)))
            recent.append(ms)
            self._requests[deployment] = (count + 1, recent)

    def requests(self) -> dict[str, RequestLatency]:
        with self._lock:
            out = {}
            for deployment, (count, recent) in self._requests.items():
                ordered = sorted(recent)
                out[deployment] = RequestLatency(
                    requests=count, window=len(ordered),
                    p50_ms=round(_quantile(ordered, 0.5), 3),
                    p95_ms=round(_quantile(ordered, 0.95), 3),
                )  # fmt: skip
            return out

    def error(self, key: str) -> None:
        with self._lock:
            self._stats.setdefault(key, _Stats()).errors += 1

    def snapshot(self) -> dict[str, PartitionMetrics]:
        with self._lock:
            return {
                key: PartitionMetrics(
                    requests=s.count,
                    compute_ms=LatencyHistogram(
                        bounds_ms=list(BOUNDS_MS),
                        counts=list(s.counts),
                        count=s.count,
                        sum_ms=round(s.sum_ms, 3),
                    ),
                    exits=dict(s.exits),
                    errors=s.errors,
                    recent_ms=_rounded(trimmed_mean(list(s.recent))),
                    recent_count=len(s.recent),
                    overhead_ms=_rounded(trimmed_mean(list(s.overhead))),
                    overhead_count=len(s.overhead),
                )
                for key, s in self._stats.items()
            }

    def exit_rate(self, key: str, exit_name: str) -> float:
        with self._lock:
            stats = self._stats.get(key)
            if stats is None or stats.count == 0:
                return 0.0
            return stats.exits.get(exit_name, 0) / stats.count


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, the nearest rank."""
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
