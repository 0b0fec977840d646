"""Carbon in the running control plane: the grid intensity of each zone now (from a time
series, when one is configured) and the grams the plan in force emits, per device.

- `GridNow` gives the intensity of zones at a time. The planner writes it into the
  scenario for devices with a zone and no declared grid figure (a declared one wins); the
  reconcile loop watches it with `GridWatch`, so a change past the threshold re-plans.
- `CarbonMeter` integrates the plan in force's carbon rate into the counter
  `continuum_carbon_grams_total{device,kind}` (kind: operational | embodied). The rate of
  device d is scenario-v1's carbon term summed over apps: operational g/h =
  `power_w(d) * grid(d) / 1000` (the plan's watts: every app's rate times the joules d
  pays), embodied g/h = `utilization(d) * embodied_kg(d) * 1000 / lifetime_h(d)`. These are
  the plan's predictions, counted as time passes, not measurements.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from orchestrator.carbon.grid import CsvSeries, IntensityProvider


@cache
def _series(path: Path, mtime_ns: int) -> CsvSeries:
    return CsvSeries.load(path)


def load_series(path: Path | None) -> IntensityProvider | None:
    """The CSV series of `path` (read again only when the file changes), or None."""
    if path is None:
        return None
    return _series(path, path.stat().st_mtime_ns)


@dataclass(frozen=True, slots=True)
class GridNow:
    """`source`: a provider, or the path of a CSV series (read again when it changes, so
    an operator can append tomorrow's forecast to a running control plane)."""

    source: IntensityProvider | Path | None

    def at(self, zones: Iterable[str], when: float) -> dict[str, float]:
        """zone -> gCO2e/kWh at `when` (epoch seconds), for the zones the provider knows."""
        provider = load_series(self.source) if isinstance(self.source, Path) else self.source
        if provider is None:
            return {}
        moment = datetime.fromtimestamp(when, UTC)
        out: dict[str, float] = {}
        for zone in zones:
            value = provider.intensity(zone, moment)
            if value is not None:
                out[zone] = value
        return out


def apply_grid(devices: list[dict[str, Any]], now: dict[str, float]) -> None:
    """Snapshot devices (`scenario_builder`) with a zone in `now` and no declared grid
    figure take the zone's intensity now."""
    for d in devices:
        zone = d.get("zone")
        if zone in now and d.get("grid_declared") is None:
            d["grid_gco2_per_kwh"] = now[zone]


class CounterFamily(Protocol):
    def labels(self, *values: str) -> Any: ...


@dataclass
class CarbonMeter:
    counter: CounterFamily
    clock: Callable[[], float] = time.monotonic
    _rates: dict[tuple[str, str], float] = field(default_factory=dict)  # g/h
    _since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_plan(self, plan: dict[str, Any] | None, scenario: dict[str, Any] | None) -> None:
        """The plan now in force and the scenario it was solved from (documents)."""
        rates: dict[tuple[str, str], float] = {}
        if plan and scenario:
            specs = {d["id"]: d for d in scenario.get("devices", [])}
            for use in plan.get("devices", []):
                d = specs.get(use["id"])
                if d is None:
                    continue
                grid = float(d.get("grid_gco2_per_kwh", 0.0))
                kg = float(d.get("embodied_kgco2e", 0.0))
                life = float(d.get("lifetime_h", 35040.0))
                rates[(d["id"], "operational")] = float(use.get("power_w") or 0.0) * grid / 1000
                rates[(d["id"], "embodied")] = (
                    float(use.get("utilization") or 0.0) * kg * 1000 / life
                )
        with self._lock:
            self._advance_locked()
            self._rates = rates

    def advance(self) -> None:
        """Count the grams emitted since the last call at the rates in force."""
        with self._lock:
            self._advance_locked()

    def _advance_locked(self) -> None:
        now = self.clock()
        if self._since is not None:
            hours = (now - self._since) / 3600.0
            for (device, kind), rate in self._rates.items():
                if rate > 0:
                    self.counter.labels(device, kind).inc(rate * hours)
        self._since = now
