"""Prometheus metrics of one control-plane process.

Each ControlPlane has its own registry, so that several in one process (tests) never
collide on metric names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.carbon.live import CarbonMeter

# Solves take from milliseconds (tiny fleets) to the time limit.
_SOLVE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_REACTION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
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

        self.step_seconds = Histogram(
            "continuum_reconcile_step_seconds",
            "Wall time of one reconcile-loop step",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=self.registry,
        )
        self.step_errors = Counter(
            "continuum_reconcile_step_errors",
            "Reconcile-loop steps that raised (the loop carried on)",
            ["step"],
            registry=self.registry,
        )
        self.triggers = Counter(
            "continuum_reconcile_triggers",
            "Triggers fired by the reconcile loop, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.is_leader = Gauge(
            "continuum_reconcile_leader",
            "1 when this process runs the reconcile loop",
            registry=self.registry,
        )
        self.reaction_seconds = Histogram(
            "continuum_reaction_seconds",
            "From a trigger's observation to every affected agent holding the new state",
            buckets=_REACTION_BUCKETS,
            registry=self.registry,
        )

        self.events_dropped = Gauge(
            "continuum_events_dropped",
            "Events a reader of this replica's event bus lost by falling a whole buffer behind",
            registry=self.registry,
        )

        # Issue 17 (truth): what each device measures, from its heartbeats. Kept as plain
        # figures and turned into gauges when scraped (`DeviceFigures`): set per heartbeat,
        # labelled gauges cost each replica several locked look-ups per heartbeat for
        # series read once per scrape.
        self.devices = DeviceFigures()
        self.registry.register(self.devices)
        self.power_dropped = Counter(
            "continuum_power_reports_dropped",
            "Heartbeat power reports the server refused to plan with, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.exit_counts_dropped = Gauge(
            "continuum_exit_counts_dropped",
            "Partitions whose reported exit counts contradict themselves (more answers than "
            "requests), left out of the learned exit rates at the last scenario build",
            registry=self.registry,
        )

        # Carbon (issue 14): the plan in force's predicted grams, counted as time passes.
        self.carbon_grams = Counter(
            "continuum_carbon_grams",
            "gCO2e of the plan in force by its cost model, by device and kind "
            "(operational | embodied), counted as time passes",
            ["device", "kind"],
            registry=self.registry,
        )
        self.carbon = CarbonMeter(self.carbon_grams)
        self.deployment_latency = Gauge(
            "continuum_deployment_latency_ms",
            "A deployment's latency: predicted by the plan in force (predicted_expected, "
            "predicted_worst) and measured end to end by its source (measured_p50, "
            "measured_p95)",
            ["deployment", "figure"],
            registry=self.registry,
        )

    def observe_plan(self, apps: list[tuple[str, float, float]]) -> None:
        """The plan now in force: (deployment, expected ms, worst ms) of each app."""
        for name, expected, worst in apps:
            self.deployment_latency.labels(name, "predicted_expected").set(expected)
            self.deployment_latency.labels(name, "predicted_worst").set(worst)

    def observe_device(self, device_id: str, beat: dict[str, Any]) -> None:
        """A checked heartbeat's battery, utilization and power (as gauges when scraped)."""
        self.devices.observe(device_id, beat)
        requests = beat.get("requests")
        if requests:
            for deployment, measured in requests.items():
                latency = self.deployment_latency
                latency.labels(deployment, "measured_p50").set(measured["p50_ms"])
                latency.labels(deployment, "measured_p95").set(measured["p95_ms"])

    def forget_device(self, device_id: str) -> None:
        """A deleted device's series go with it."""
        self.devices.forget(device_id)

    def observe_step(self, step: str, seconds: float) -> None:
        self.step_seconds.labels(step).observe(seconds)

    def step_failed(self, step: str) -> None:
        self.step_errors.labels(step).inc()

    def trigger(self, kind: str) -> None:
        self.triggers.labels(kind).inc()

    def leader(self, is_leader: bool) -> None:
        self.is_leader.set(1 if is_leader else 0)

    def reaction(self, seconds: float) -> None:
        self.reaction_seconds.observe(seconds)

    def observe_solve(self, seconds: float) -> None:
        self.solve_seconds.observe(seconds)

    def render(self) -> bytes:
        self.carbon.advance()
        return generate_latest(self.registry)


class _Device:
    """One device's latest figures, each kept until a heartbeat brings a new value."""

    __slots__ = ("battery", "dropped", "power", "provenance", "utilization")

    def __init__(self) -> None:
        self.battery: float | None = None
        self.utilization: float | None = None
        self.provenance = ""  # of the figures in `power`: a device has one at a time
        self.power: dict[str, float] = {}  # figure (idle, busy, measured) -> watts
        self.dropped: dict[str, float] = {}  # reason -> the agent's running count


_POWER_FIGURES = (("idle", "idle_w"), ("busy", "busy_w"), ("measured", "watts"))


class DeviceFigures(Collector):
    """The per-device gauges (battery, utilization, power, readings an agent dropped),
    built from each device's latest heartbeat figures when the registry is collected."""

    def __init__(self) -> None:
        self._devices: dict[str, _Device] = {}

    def observe(self, device_id: str, beat: dict[str, Any]) -> None:
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices[device_id] = _Device()
        battery = beat.get("battery_pct")
        if battery is not None:
            device.battery = battery
        utilization = beat.get("utilization")
        if utilization is not None:
            device.utilization = utilization
        report = beat.get("power")
        if not isinstance(report, dict):
            return
        provenance = str(report["provenance"])
        if provenance != device.provenance:
            device.provenance, device.power = provenance, {}
        for figure, field in _POWER_FIGURES:
            if report[field] is not None:
                device.power[figure] = report[field]
        device.dropped.update(report.get("rejected") or {})

    def forget(self, device_id: str) -> None:
        self._devices.pop(device_id, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        battery = GaugeMetricFamily(
            "continuum_device_battery_percent",
            "A device's battery level from its heartbeat",
            labels=["device"],
        )
        utilization = GaugeMetricFamily(
            "continuum_device_utilization",
            "A device's compute utilization from its heartbeat (busy seconds per second)",
            labels=["device"],
        )
        power = GaugeMetricFamily(
            "continuum_device_power_watts",
            "A device's power from its heartbeat: the latest reading (figure=measured) and "
            "the idle and busy watts it is planned with, by their provenance",
            labels=["device", "figure", "provenance"],
        )
        dropped = GaugeMetricFamily(
            "continuum_device_power_readings_dropped",
            "Power readings an agent dropped itself, by reason (its running count)",
            labels=["device", "reason"],
        )
        # A copy: a scrape in a worker thread must not see the dictionary change size.
        for device_id, device in list(self._devices.items()):
            if device.battery is not None:
                battery.add_metric([device_id], device.battery)
            if device.utilization is not None:
                utilization.add_metric([device_id], device.utilization)
            for figure, watts in list(device.power.items()):
                power.add_metric([device_id, figure, device.provenance], watts)
            for reason, count in list(device.dropped.items()):
                dropped.add_metric([device_id, reason], count)
        yield from (power, battery, utilization, dropped)
