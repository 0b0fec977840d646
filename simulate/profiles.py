"""What happens to devices over a run besides the plan: charging and failures.

Battery profiles (`--battery DEVICE=PROFILE`):
- `solar:START-END:POWER`, e.g. `solar:6-18:5W`: the pack charges at POWER watts from
  hour START to hour END of every simulated day (day = hours since the start, modulo 24);
- `mains:HOUR[:POWER]`, e.g. `mains:12` or `mains:12:20W`: plugged into the mains from
  hour HOUR on; the mains pays the device's draw from then, and the pack charges at POWER
  (default 10 W) until full.
Charge is added on top of the drain (idle plus the plan's power) and a pack never goes
above 100%.

Failures (`--fail DEVICE@HOUR[:HOURS]`): the device is gone from HOUR on, for HOURS
(default: the rest of the run), then comes back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from simulate.errors import InputError

DEFAULT_MAINS_W = 10.0

_NUM = r"(\d+(?:\.\d+)?)"
_SOLAR = re.compile(rf"solar:{_NUM}-{_NUM}:{_NUM}W?")
_MAINS = re.compile(rf"mains:{_NUM}(?::{_NUM}W?)?")
_FAIL = re.compile(rf"{_NUM}(?::{_NUM})?")


@dataclass(frozen=True, slots=True)
class BatteryProfile:
    """Charging over time: `charge_w(t)` watts into the pack, `on_mains(t)`."""

    text: str
    kind: str  # solar | mains
    start_h: float
    end_h: float  # solar only
    power_w: float

    def charge_w(self, t_s: float) -> float:
        hour = t_s / 3600.0
        if self.kind == "mains":
            return self.power_w if hour >= self.start_h else 0.0
        of_day = hour % 24.0
        return self.power_w if self.start_h <= of_day < self.end_h else 0.0

    def on_mains(self, t_s: float) -> bool:
        return self.kind == "mains" and t_s / 3600.0 >= self.start_h

    def changes_at(self, hours: float) -> list[float]:
        """Times (seconds) at which the charge changes within a run of `hours`."""
        if self.kind == "mains":
            return [self.start_h * 3600.0] if self.start_h < hours else []
        out = []
        for day in range(int(hours // 24) + 1):
            for h in (self.start_h, self.end_h):
                t = (day * 24 + h) * 3600.0
                if 0 < t < hours * 3600.0:
                    out.append(t)
        return sorted(out)


def parse_profile(device: str, text: str) -> BatteryProfile:
    """A battery profile, or InputError naming the device and the expected forms."""
    m = _SOLAR.fullmatch(text)
    if m:
        start, end, power = (float(g) for g in m.groups())
        if not (0 <= start < end <= 24):
            raise InputError(
                f"--battery {device}={text}: solar hours must satisfy 0 <= START < END <= 24"
            )
        return BatteryProfile(text, "solar", start, end, _watts(device, text, power))
    m = _MAINS.fullmatch(text)
    if m:
        start = float(m.group(1))
        power = float(m.group(2)) if m.group(2) is not None else DEFAULT_MAINS_W
        return BatteryProfile(text, "mains", start, math.inf, _watts(device, text, power))
    raise InputError(
        f"--battery {device}={text}: unknown profile; use solar:START-END:POWER (e.g. "
        "solar:6-18:5W) or mains:HOUR[:POWER] (e.g. mains:12:20W)"
    )


def _watts(device: str, text: str, power: float) -> float:
    if not 0 <= power <= 10_000:
        raise InputError(f"--battery {device}={text}: power must be 0..10000 W")
    return power


@dataclass(frozen=True, slots=True)
class Failure:
    """`device` is gone from `start_s` until `end_s` (inf: the rest of the run)."""

    device: str
    start_s: float
    end_s: float

    def down(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


def parse_failure(text: str) -> Failure:
    """`DEVICE@HOUR[:HOURS]`; InputError naming the option otherwise."""
    device, at, when = text.rpartition("@")[0], "@" in text, text.rpartition("@")[2]
    m = _FAIL.fullmatch(when) if at else None
    if not device or m is None:
        raise InputError(f"--fail {text}: expected DEVICE@HOUR[:HOURS], e.g. edge-1@6:2")
    start = float(m.group(1)) * 3600.0
    end = start + float(m.group(2)) * 3600.0 if m.group(2) is not None else math.inf
    if end <= start:
        raise InputError(f"--fail {text}: HOURS must be positive")
    return Failure(device, start, end)


__all__ = ["DEFAULT_MAINS_W", "BatteryProfile", "Failure", "parse_failure", "parse_profile"]
