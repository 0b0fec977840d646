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
        self._plan_w = np.zeros(len(packs))
        self.charge_w = np.zeros(len(packs))
        self.mains = np.zeros(len(packs), dtype=bool)
        self._up = np.ones(len(packs), dtype=bool)
        # Each step's change of level, (re)made when what it reads changes: the plan's
        # power, a device up or down, charging (most steps change none of them).
        self._delta: tuple[float, np.ndarray] | None = None
        self.in_scenario = self.level.copy()  # the levels the scenario of now holds
        self.reported = np.floor(self.level / REPORT_PCT)
        self.profiles = {self.index[d]: p for d, p in profiles.items()}

    @property
    def plan_w(self) -> np.ndarray:
        """The plan's power on each pack's device. Set whole, or one with `set_plan_w`
        (either drops the step's kept change of level); not written in place."""
        return self._plan_w

    @plan_w.setter
    def plan_w(self, watts: np.ndarray) -> None:
        self._plan_w, self._delta = watts, None

    def set_plan_w(self, k: int, watts: float) -> None:
        self._plan_w[k], self._delta = watts, None

    @property
    def up(self) -> np.ndarray:
        return self._up

    @up.setter
    def up(self, up: np.ndarray) -> None:
        self._up, self._delta = up, None

    def set_charging(self, t: float) -> np.ndarray:
        """Charge and mains of time t; the packs whose charging state changed."""
        before = self.charge_w > 0
        for k, p in self.profiles.items():
            self.charge_w[k] = p.charge_w(t)
            self.mains[k] = p.on_mains(t)
        self._delta = None
        return np.flatnonzero(before != (self.charge_w > 0))

    def advance(self, dt: float) -> None:
        if self._delta is None or self._delta[0] != dt:
            draw = np.where(self.mains | ~self._up, 0.0, self.idle_w + self._plan_w)
            self._delta = (dt, (draw - self.charge_w) * dt / 3600.0 / self.cap_wh * 100.0)
        level = self.level
        np.subtract(level, self._delta[1], out=level)
        # np.clip's own checks cost more than the two ufuncs (it runs every step).
        np.maximum(level, 0.0, out=level)
        np.minimum(level, 100.0, out=level)

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
