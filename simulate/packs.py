"""The simulated fleet's battery packs, as arrays: levels drain or charge every step by
their net power; what the agents report, and what moves the scenario of now.

Between two changes of what a pack's step reads (the plan's power, its device up or
down, charging), every level moves by the same amount each step, so the step at which a
level can first cross what is asked of it (a tenth of a point reported, the scenario's
step, `min_pct`, empty) is known in advance: `reports`, `changes` and `switched_off`
look again only from that step on (a day of the 200-device fleet: reports on 36% of its
steps, scenario changes on 8%, and each looked at all 64 packs every step)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulate.profiles import BatteryProfile

REPORT_PCT = 0.1  # agents report a battery level to a tenth of a point
# Points kept clear of a threshold before a step is known not to cross it: far above the
# rounding a day of steps adds to a level (1e-9), far below a step's move (1e-4 and up).
_CLEAR = 1e-6
_NEVER = 1 << 62


class Packs:
    """The packs, as arrays: levels move every step by their net power."""

    def __init__(self, scenario: dict[str, Any], profiles: dict[str, BatteryProfile]) -> None:
        packs = [d for d in scenario["devices"] if d.get("battery")]
        self.ids = [d["id"] for d in packs]
        self.index = {d: k for k, d in enumerate(self.ids)}
        self.spec = {d["id"]: dict(d["battery"]) for d in packs}
        self.cap_wh = np.array([d["battery"]["capacity_wh"] for d in packs], dtype=float)
        # Moved by `advance` alone while the run looks at it (its looks count on that).
        self.level = np.array([d["battery"]["level_pct"] for d in packs], dtype=float)
        self.min_pct = np.array([d["battery"].get("min_pct", 0.0) for d in packs], dtype=float)
        self.idle_w = np.array([d["power_w"]["idle"] for d in packs], dtype=float)
        self._plan_w = np.zeros(len(packs))
        self.charge_w = np.zeros(len(packs))
        self.mains = np.zeros(len(packs), dtype=bool)
        self._up = np.ones(len(packs), dtype=bool)
        # Each step's change of level, (re)made when what it reads changes: the plan's
        # power, a device up or down, charging (most steps change none of them).
        self._delta: tuple[float, np.ndarray, int] | None = None  # dt, change, made at
        self._speeds: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.in_scenario = self.level.copy()  # the levels the scenario of now holds
        self.reported = np.floor(self.level / REPORT_PCT)
        self.profiles = {self.index[d]: p for d, p in profiles.items()}
        # Steps advanced, and the last step count at which each look is known to find what
        # it found last (`_quiet`): reports, changes of `step_pct`, packs switched off.
        self.advanced = 0
        self._quiet = [-1, -1, -1]
        self._step_pct = math.nan
        self._off: tuple[list[int], int] = ([], 0)
        self._off_of: tuple[int, np.ndarray | None] = (-1, None)  # what `_off` was made at

    @property
    def plan_w(self) -> np.ndarray:
        """The plan's power on each pack's device. Set whole, or one with `set_plan_w`
        (a change drops the step's kept change of level and looks); not written in place."""
        return self._plan_w

    @plan_w.setter
    def plan_w(self, watts: np.ndarray) -> None:
        if not np.array_equal(watts, self._plan_w):
            self._moved()
        self._plan_w = watts

    def set_plan_w(self, k: int, watts: float) -> None:
        if self._plan_w[k] != watts:
            self._plan_w[k] = watts
            self._moved()

    @property
    def up(self) -> np.ndarray:
        return self._up

    @up.setter
    def up(self, up: np.ndarray) -> None:
        self._up = up
        self._moved()

    def _moved(self) -> None:
        """What a step reads changed: its change of level and every look are made again."""
        self._delta = None
        self._quiet = [-1, -1, -1]

    def set_charging(self, t: float) -> np.ndarray:
        """Charge and mains of time t; the packs whose charging state changed."""
        before = self.charge_w > 0
        for k, p in self.profiles.items():
            self.charge_w[k] = p.charge_w(t)
            self.mains[k] = p.on_mains(t)
        self._moved()
        return np.flatnonzero(before != (self.charge_w > 0))

    def advance(self, dt: float) -> None:
        if self._delta is None or self._delta[0] != dt:
            self._moved()  # the looks' horizons were made for the change of another dt
            draw = np.where(self.mains | ~self._up, 0.0, self.idle_w + self._plan_w)
            d = (draw - self.charge_w) * dt / 3600.0 / self.cap_wh * 100.0
            self._delta, self._speeds = (dt, d, self.advanced), None
        level = self.level
        np.subtract(level, self._delta[1], out=level)
        # np.clip's own checks cost more than the two ufuncs (it runs every step).
        np.maximum(level, 0.0, out=level)
        np.minimum(level, 100.0, out=level)
        self.advanced += 1

    def _steady(self) -> bool:
        """Whether the step's change has lasted a whole step: a policy that moves the plan's
        power at nearly every step (neurosurgeon) would pay for horizons it never uses."""
        return self._delta is not None and self.advanced - self._delta[2] >= 2

    def _horizon(self, below: np.ndarray, above: np.ndarray) -> int:
        """The last step count at which no level has reached its threshold: `below` the
        level by `below` points for a pack that drains, `above` it by `above` for one that
        charges (inf: none). A pack held at 100 by the clip looks again now and then; one
        held at 0 is switched off, which changes its step."""
        if not below.size:
            return _NEVER
        assert self._delta is not None
        if self._speeds is None:
            d = self._delta[1]
            still = d == 0.0
            # Which packs drain, steps per point, and inf added for the packs that stay put
            # (a step of 1 point for them keeps inf * 0 out).
            rate = 1.0 / np.where(still, 1.0, np.abs(d))
            self._speeds = (d > 0.0, rate, np.where(still, np.inf, 0.0))
        drains, rate, still = self._speeds
        steps = np.where(drains, below, above)
        steps -= _CLEAR
        steps *= rate
        steps += still
        least = float(steps.min())
        return _NEVER if least == math.inf else self.advanced + math.floor(least)

    def battery_doc(self, device: str) -> dict[str, Any]:
        k = self.index[device]
        return {**self.spec[device], "level_pct": round(float(self.in_scenario[k]), 4)}

    def reports(
        self, down: frozenset[str], charging_changed: np.ndarray
    ) -> dict[str, tuple[float, bool]]:
        """What the agents report this step: a level that crossed a tenth of a point, or
        charging that started or stopped."""
        if not charging_changed.size and self.advanced <= self._quiet[0]:
            return {}
        level = self.level
        now = np.floor(level / REPORT_PCT)
        report = np.flatnonzero(now != self.reported)
        if charging_changed.size:
            report = np.union1d(report, charging_changed)
        self.reported = now
        if self._steady():
            into = level - now * REPORT_PCT  # points into the tenth it reported
            self._quiet[0] = self._horizon(into, REPORT_PCT - into)
        return {
            self.ids[j]: (float(self.level[j]), bool(self.charge_w[j] > 0))
            for j in report
            if self.ids[j] not in down
        }

    def changes(self, down: frozenset[str], step_pct: float) -> dict[str, dict[str, Any]]:
        """Levels that moved past `step_pct` points from the scenario of now: the battery
        each of those devices has there now."""
        if step_pct == self._step_pct and self.advanced <= self._quiet[1]:
            return {}
        level, held = self.level, self.in_scenario
        moved = np.flatnonzero(np.abs(level - held) >= step_pct)
        out: dict[str, dict[str, Any]] = {}
        for j in moved:
            held[j] = level[j]
            if self.ids[j] not in down:
                out[self.ids[j]] = {"battery": self.battery_doc(self.ids[j])}
        self._step_pct = step_pct
        if self._steady():
            gap = level - held
            gap += step_pct  # points down to held - step_pct
            self._quiet[1] = self._horizon(gap, 2.0 * step_pct - gap)
        return out

    def switched_off(self) -> tuple[list[int], int]:
        """The packs that switch their device off (flat, or down and not charged back to
        `min_pct`), and how many are below `min_pct`."""
        made = self._off_of
        if self.advanced <= self._quiet[2] or (made[0] == self.advanced and made[1] is self._up):
            return self._off  # no level crossed, or the very levels and devices up
        self._off_of = (self.advanced, self._up)
        level, low = self.level, self.min_pct
        below = level < low
        flat = (level <= 0.0) | (~self._up & below)
        self._off = (np.flatnonzero(flat).tolist(), int(np.count_nonzero(below)))
        if not self._steady():
            return self._off
        # Draining, the next threshold is min_pct from above it, else empty; charging,
        # leaving empty, then reaching min_pct from below it.
        self._quiet[2] = self._horizon(
            level - np.where(below, 0.0, low),
            np.where(level <= 0.0, 0.0, np.where(below, low - level, np.inf)),
        )
        return self._off


__all__ = ["REPORT_PCT", "Packs"]
