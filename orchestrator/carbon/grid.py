"""Grid carbon intensity per zone: Boavizta's annual mix, a time series, or a provider.

A zone is a code of Boavizta's electrical-mix table (ISO 3166 alpha-3 country codes such
as FRA or DEU, plus EEE for Europe and WOR for the world). Its annual average comes from
that table. Where intensity varies through the day, a CSV time series per zone overrides
it, and so can any `IntensityProvider` (an interface only: no external service is
reachable from here, so none ships). `GridWatch` turns a change past the hysteresis
threshold into a re-planning trigger, so load moves to cleaner sites when the SLOs allow.
"""

from __future__ import annotations

import csv
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from orchestrator.carbon.boavizta import Boavizta
from orchestrator.carbon.derive import GRID_BOUNDS_G_PER_KWH, CarbonInputError, zone
from orchestrator.triggers import Trigger


class IntensityProvider(Protocol):
    """gCO2e/kWh of a zone at a time, or None when this provider does not know it."""

    def intensity(self, zone: str, at: datetime) -> float | None: ...


@dataclass(frozen=True, slots=True)
class AnnualMix:
    """Boavizta's yearly average for the zone, whatever the time."""

    boavizta: Boavizta

    def intensity(self, zone_code: str, at: datetime) -> float | None:
        return zone(self.boavizta, zone_code).gco2_per_kwh


@dataclass(slots=True)
class CsvSeries:
    """A step function per zone from a CSV with the header `time,zone,gco2_per_kwh`
    (`time` in ISO 8601 with its UTC offset): the intensity at t is the last row at or
    before t. Before a zone's first row, or for a zone not in the file: None."""

    points: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CsvSeries:
        rows: dict[str, list[tuple[float, float]]] = {}
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {"time", "zone", "gco2_per_kwh"} - set(reader.fieldnames or ())
            if missing:
                raise CarbonInputError(str(path), f"missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                where = f"{path}:{line}"
                try:
                    at = datetime.fromisoformat(row["time"])
                    value = float(row["gco2_per_kwh"])
                except ValueError as exc:
                    raise CarbonInputError(where, str(exc)) from None
                if at.tzinfo is None:
                    raise CarbonInputError(where, f"time {row['time']!r} has no UTC offset")
                low, high = GRID_BOUNDS_G_PER_KWH
                if not low <= value <= high:
                    raise CarbonInputError(
                        where, f"gco2_per_kwh {value:g} outside {low:g} to {high:g}"
                    )
                rows.setdefault(row["zone"], []).append((at.timestamp(), value))
        series = cls()
        for code, pts in rows.items():
            pts.sort()
            series.points[code] = ([t for t, _ in pts], [v for _, v in pts])
        return series

    def intensity(self, zone_code: str, at: datetime) -> float | None:
        pts = self.points.get(zone_code)
        if pts is None:
            return None
        k = bisect_right(pts[0], at.timestamp()) - 1
        return None if k < 0 else pts[1][k]


@dataclass(frozen=True, slots=True)
class Layered:
    """The first provider that knows the zone's intensity at that time."""

    providers: Sequence[IntensityProvider]

    def intensity(self, zone_code: str, at: datetime) -> float | None:
        for provider in self.providers:
            value = provider.intensity(zone_code, at)
            if value is not None:
                return value
        return None


@dataclass(slots=True)
class GridWatch:
    """Fires when a zone's intensity has moved by more than `threshold` (relative) from the
    figure the plan in force was solved with, and by at least `floor_g` in absolute terms
    (a clean grid going from 20 to 30 g/kWh changes no placement)."""

    threshold: float = 0.2
    floor_g: float = 20.0
    _planned: dict[str, float] = field(default_factory=dict)
    _now: dict[str, float] = field(default_factory=dict)
    _version: int | None = None

    def solved_with(self, version: int, figures: Mapping[str, float]) -> None:
        """The plan in force (`version`) was solved with these zone intensities: they are
        what a change is measured from. Without them the first figure seen is the
        baseline, and a control plane that takes the lead after the grid moved (or sees a
        zone late) would never re-plan for that move."""
        if version != self._version:
            self._version = version
            self._planned.update(figures)

    def observe(self, zone_code: str, gco2_per_kwh: float, at: float) -> Trigger | None:
        self._now[zone_code] = gco2_per_kwh
        planned = self._planned.setdefault(zone_code, gco2_per_kwh)
        delta = abs(gco2_per_kwh - planned)
        if delta / max(planned, 1.0) <= self.threshold or delta < self.floor_g:
            return None
        reason = f"grid {zone_code}: {planned:.0f} -> {gco2_per_kwh:.0f} gCO2e/kWh"
        return Trigger("grid", zone_code, reason, at)

    def commit(self) -> None:
        """The plan now in force was solved with the current intensities."""
        self._planned.update(self._now)
