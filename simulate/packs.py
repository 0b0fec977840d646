"""The simulated fleet's battery packs, as arrays: levels drain or charge every step by
their net power; what the agents report, and what moves the scenario of now."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulate.profiles import BatteryProfile

REPORT_PCT = 0.1  # agents report a battery level to a tenth of a point


class Packs:
    """The packs, as arrays: levels move every step by their net power."""

    def __init__(self, scenario: dict[str, Any], profiles: dict[str, BatteryProfile]) -> None:
        packs = [d for d in scenario["devices"] if d.get("battery")]
        self.ids = [d["id"] for d in packs]
        self.index = {d: k for k, d in enumerate(self.ids)}
        self.spec = {d["id"]: dict(d["battery"]) for d in packs}
        self.cap_wh = np.array([d["battery"]["capacity_wh"] for d in packs], dtype=float)
        self.level = np.array([d["battery"]["level_pct"] for d in packs], dtype=float)
        self.min_pct = np.array([d["battery"].get("min_pct", 0.0) for d in packs], dtype=float)
        self.idle_w = np.array([d["power_w"]["idle"] for d in packs], dtype=float)
        self.plan_w = np.zeros(len(packs))
        self.charge_w = np.zeros(len(packs))
        self.mains = np.zeros(len(packs), dtype=bool)
        self.up = np.ones(len(packs), dtype=bool)
        self.in_scenario = self.level.copy()  # the levels the scenario of now holds
        self.reported = np.floor(self.level / REPORT_PCT)
        self.profiles = {self.index[d]: p for d, p in profiles.items()}

    def set_charging(self, t: float) -> np.ndarray:
        """Charge and mains of time t; the packs whose charging state changed."""
        before = self.charge_w > 0
        for k, p in self.profiles.items():
            self.charge_w[k] = p.charge_w(t)
            self.mains[k] = p.on_mains(t)
        return np.flatnonzero(before != (self.charge_w > 0))

    def advance(self, dt: float) -> None:
        draw = np.where(self.mains | ~self.up, 0.0, self.idle_w + self.plan_w)
        self.level -= (draw - self.charge_w) * dt / 3600.0 / self.cap_wh * 100.0
        np.clip(self.level, 0.0, 100.0, out=self.level)

    def battery_doc(self, device: str) -> dict[str, Any]:
        k = self.index[device]
        return {**self.spec[device], "level_pct": round(float(self.in_scenario[k]), 4)}

    def reports(
        self, down: frozenset[str], charging_changed: np.ndarray
    ) -> dict[str, tuple[float, bool]]:
        """What the agents report this step: a level that crossed a tenth of a point, or
        charging that started or stopped."""
        now = np.floor(self.level / REPORT_PCT)
        report = np.flatnonzero(now != self.reported)
        if charging_changed.size:
            report = np.union1d(report, charging_changed)
        self.reported = now
        return {
            self.ids[j]: (float(self.level[j]), bool(self.charge_w[j] > 0))
            for j in report
            if self.ids[j] not in down
        }

    def changes(self, down: frozenset[str], step_pct: float) -> dict[str, dict[str, Any]]:
        """Levels that moved past `step_pct` points from the scenario of now: the battery
        each of those devices has there now."""
        moved = np.flatnonzero(np.abs(self.level - self.in_scenario) >= step_pct)
        out: dict[str, dict[str, Any]] = {}
        for j in moved:
            self.in_scenario[j] = self.level[j]
            if self.ids[j] not in down:
                out[self.ids[j]] = {"battery": self.battery_doc(self.ids[j])}
        return out


__all__ = ["REPORT_PCT", "Packs"]
