"""Prometheus metrics of one control-plane process.

Each ControlPlane has its own registry, so that several in one process (tests) never
collide on metric names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

# Solves take from milliseconds (tiny fleets) to the time limit.
_SOLVE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.heartbeats = Counter(
            "continuum_heartbeats", "Heartbeats received", registry=self.registry
        )
        self.solve_seconds = Histogram(
            "continuum_solve_seconds",
            "Wall time of a solve, pool round trip included",
            buckets=_SOLVE_BUCKETS,
            registry=self.registry,
        )
        self.plan_versions = Counter(
            "continuum_plan_versions",
            "Plan versions decided by this process",
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "continuum_http_request_seconds",
            "HTTP request latency by route template and method",
            ["method", "route", "status"],
            buckets=_HTTP_BUCKETS,
            registry=self.registry,
        )

    def observe_solve(self, seconds: float) -> None:
        self.solve_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
