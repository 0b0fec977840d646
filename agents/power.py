"""Measured power: read wherever the platform gives it, checked, and fitted against load.

Readers, in order of preference (the first that answers is used for a sample):
- `PowerSupplyReader`: a discharging battery's `power_now` (µW), or `current_now` (µA)
  times `voltage_now` (µV), under /sys/class/power_supply (the kernel's power-supply
  class ABI). While charging these are the charger's figures, not the device's draw.
- `BatteryDrainReader`: the battery's stored energy between two readings, `energy_now`
  (µWh), or `charge_now` (µAh) times `voltage_now` (µV); for batteries that report no
  instantaneous power. Only a change counts: gauges update coarsely, so the power is the
  energy lost over the time since the last change.
- `RaplReader`: Intel RAPL package energy counters, `energy_uj` of each top-level
  /sys/class/powercap/intel-rapl:N zone (summed), wrapping at `max_energy_range_uj`. RAPL
  covers the CPU packages (and their DRAM where reported), not the whole machine.
- `NvmlReader`: NVIDIA GPUs' board power through NVML (pynvml), fitted against the
  GPUs' own utilization; used where none of the above answers.

`PowerMeter` takes one sample per heartbeat, beside the agent's utilization. A sample
that is NaN or infinite, negative, over the device's plausible maximum (a 10,000 W
camera), or taken on a clock that went backwards is dropped and counted by reason: it
never reaches the control plane. Over a sliding window of samples the meter fits
`watts = idle + (busy - idle) * utilization` by least squares (each reading paired with
the mean utilization over the time it covers, and weighed by that time), once the
utilization has spread enough to tell idle from busy (provenance `fitted`). Until then
the measured level fixes the idle draw and the declared busy-minus-idle slope is kept
(`measured`). Without a reader, the declared figures stand (`declared`, and nothing is reported).
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from api.wire import PowerReport

POWER_SUPPLY = Path("/sys/class/power_supply")
POWERCAP = Path("/sys/class/powercap")
Provenance = Literal["declared", "measured", "fitted"]
# Beyond these a reading is taken for a broken sensor, by tier.
MAX_PLAUSIBLE_W = {"device": 200.0, "edge": 2_000.0, "cloud": 20_000.0}


def _number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _batteries(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [s for s in sorted(root.iterdir()) if _text(s / "type") == "Battery"]


class Reader(Protocol):
    name: str

    def read(self, now: float) -> float | None:
        """Watts at wall-clock time `now`, or None (nothing to say yet, or not here)."""
        ...

    def reset(self) -> None:
        """Forget any earlier reading (after the clock went backwards)."""
        ...


class PowerSupplyReader:
    def __init__(self, root: Path = POWER_SUPPLY) -> None:
        self.root = root
        self.name = "power_supply"

    def read(self, now: float) -> float | None:
        for supply in _batteries(self.root):
            if _text(supply / "status") != "Discharging":
                continue
            power = _number(supply / "power_now")
            if power is not None:
                self.name = f"power_supply:{supply.name}"
                return abs(power) / 1e6  # some drivers sign the discharge negative
            current, volts = _number(supply / "current_now"), _number(supply / "voltage_now")
            if current is not None and volts is not None:
                self.name = f"power_supply:{supply.name}"
                return abs(current) * volts / 1e12
        return None

    def reset(self) -> None:
        pass


class BatteryDrainReader:
    def __init__(self, root: Path = POWER_SUPPLY) -> None:
        self.root = root
        self.name = "battery_drain"
        self._last: tuple[str, float, float] | None = None  # supply, at, Wh

    @staticmethod
    def _stored_wh(supply: Path) -> float | None:
        energy = _number(supply / "energy_now")
        if energy is not None:
            return energy / 1e6
        charge, volts = _number(supply / "charge_now"), _number(supply / "voltage_now")
        if charge is not None and volts is not None:
            return charge * volts / 1e12
        return None

    def read(self, now: float) -> float | None:
        for supply in _batteries(self.root):
            stored = self._stored_wh(supply)
            if stored is None:
                continue
            last = self._last
            if _text(supply / "status") != "Discharging" or last is None or last[0] != supply.name:
                self._last = (supply.name, now, stored)
                return None
            if stored >= last[2] or now <= last[1]:
                return None  # the gauge has not moved yet: wait for it
            self._last = (supply.name, now, stored)
            self.name = f"battery_drain:{supply.name}"
            return (last[2] - stored) * 3600.0 / (now - last[1])
        return None

    def reset(self) -> None:
        self._last = None


class RaplReader:
    def __init__(self, root: Path = POWERCAP) -> None:
        self.root = root
        self.name = "rapl"
        self._last: dict[str, tuple[float, float]] = {}  # zone -> (at, µJ)

    def _zones(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        # Top-level zones only (intel-rapl:0, not its sub-zone intel-rapl:0:0): sub-zones
        # are already inside their package's count.
        return [
            z for z in sorted(self.root.iterdir())
            if z.name.startswith("intel-rapl:") and z.name.count(":") == 1
        ]  # fmt: skip

    def read(self, now: float) -> float | None:
        total, complete = 0.0, True
        zones = self._zones()
        for zone in zones:
            energy = _number(zone / "energy_uj")
            if energy is None:
                complete = False
                continue
            last = self._last.get(zone.name)
            self._last[zone.name] = (now, energy)
            if last is None or now <= last[0]:
                complete = False
                continue
            delta = energy - last[1]
            if delta < 0:  # the counter wrapped
                delta += _number(zone / "max_energy_range_uj") or math.nan
            total += delta / 1e6 / (now - last[0])
        return total if zones and complete else None

    def reset(self) -> None:
        self._last.clear()


class NvmlReader:
    """NVIDIA GPUs' board power through NVML (the `pynvml` module of `nvidia-ml-py`, the
    `nvml` extra): `nvmlDeviceGetPowerUsage` (milliwatts) summed over the GPUs, paired
    with their mean `nvmlDeviceGetUtilizationRates().gpu` (percent) rather than the
    agent's own compute: a GPU's draw follows its own load. Without the module, or when
    NVML fails to start (no driver: `NVMLError_LibraryNotFound`), it says nothing, for
    good; an NVML error on one reading skips that reading (`errors` counts them)."""

    def __init__(self, nvml: Any | None = None) -> None:
        self.name = "nvml"
        self.errors = 0
        self.unavailable: str | None = None  # why NVML is not used here
        self._nvml = nvml
        self._handles: list[Any] | None = None
        self._utilization: float | None = None

    def _start(self) -> list[Any]:
        if self._handles is not None or self.unavailable is not None:
            return self._handles or []
        nvml = self._nvml
        if nvml is None:
            try:
                nvml = self._nvml = importlib.import_module("pynvml")
            except ImportError:
                self.unavailable = "pynvml is not installed (the nvml extra)"
                return []
        try:
            nvml.nvmlInit()
            self._handles = [
                nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())
            ]
        except nvml.NVMLError as exc:
            self.unavailable = f"NVML: {exc}"
            return []
        return self._handles

    def read(self, now: float) -> float | None:
        self._utilization = None
        handles = self._start()
        if not handles:
            return None
        nvml: Any = self._nvml
        try:
            milliwatts = [float(nvml.nvmlDeviceGetPowerUsage(h)) for h in handles]
            busy = [float(nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in handles]
        except nvml.NVMLError:
            self.errors += 1
            return None
        self._utilization = sum(busy) / len(busy) / 100.0
        return sum(milliwatts) / 1000.0

    def utilization(self) -> float | None:
        """The GPUs' mean utilization (0..1) at the last reading; None without one."""
        return self._utilization

    def reset(self) -> None:
        pass


def default_readers() -> list[Reader]:
    return [PowerSupplyReader(), BatteryDrainReader(), RaplReader(), NvmlReader()]


@dataclass
class PowerMeter:
    """Samples, checks and fits a device's power; see the module docstring."""

    readers: list[Reader]
    declared_idle_w: float
    declared_busy_w: float
    max_w: float
    window: int = 120  # samples kept (one per heartbeat)
    min_samples: int = 10  # before a fit
    min_spread: float = 0.2  # utilization range a fit needs
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (utilization, W)
    # Each sample's weight: the seconds its reading covers. A battery gauge's reading
    # after five quiet heartbeats is five heartbeats' worth of evidence, not one: weighed
    # as one, slow (idle) periods count too little and the fitted idle draw comes out high.
    spans: deque[float] = field(default_factory=deque)
    rejected: dict[str, int] = field(default_factory=dict)
    source: str = ""
    latest_w: float | None = None
    _last_at: float | None = None
    # Busy seconds and elapsed seconds since the last reading was taken: a battery's
    # gauge moves every few heartbeats, and its reading is the power over all of them.
    _busy_s: float = 0.0
    _span_s: float = 0.0

    def _reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def sample(self, now: float, utilization: float) -> None:
        """One reading at wall-clock `now` beside the utilization since the last one."""
        if self._last_at is not None and now <= self._last_at:
            self._reject("clock")
            for reader in self.readers:
                reader.reset()  # a rate over a negative interval means nothing
            self._last_at, self._busy_s, self._span_s = now, 0.0, 0.0
            return
        if self._last_at is not None and math.isfinite(utilization) and utilization >= 0:
            self._busy_s += utilization * (now - self._last_at)
            self._span_s += now - self._last_at
        self._last_at = now
        # A reading covers the heartbeats since the previous one: paired with their mean
        # utilization, not the last heartbeat's (pairing a drain over five heartbeats
        # with the fifth's load alone flattened the fit: idle high, busy low).
        span = self._span_s if self._span_s > 0 else 1.0
        if self._span_s > 0:
            utilization = self._busy_s / self._span_s
        for reader in self.readers:
            watts = reader.read(now)
            if watts is None:
                continue
            own = getattr(reader, "utilization", None)
            if own is not None and (measured := own()) is not None:
                utilization = measured  # a GPU's draw against the GPU's own load
            if not math.isfinite(watts) or not math.isfinite(utilization):
                self._reject("nan")
            elif watts < 0 or utilization < 0:
                self._reject("negative")
            elif watts > self.max_w:
                self._reject("absurd")
            else:
                self.source = reader.name
                self.latest_w = watts
                self.samples.append((min(utilization, 1.0), watts))
                self.spans.append(span)
                while len(self.samples) > self.window:
                    self.samples.popleft()
                    self.spans.popleft()
            # Kept or dropped, a reading closes its span: the next covers what follows.
            self._busy_s, self._span_s = 0.0, 0.0
            return

    def figures(self) -> tuple[Provenance, float, float]:
        """(provenance, idle W, busy W) from the window."""
        n = len(self.samples)
        if n == 0:
            return "declared", self.declared_idle_w, self.declared_busy_w
        us = [u for u, _ in self.samples]
        spans = list(self.spans) if len(self.spans) == n else [1.0] * n
        total = sum(spans)
        mean_u = sum(k * u for k, (u, _) in zip(spans, self.samples, strict=True)) / total
        mean_w = sum(k * w for k, (_, w) in zip(spans, self.samples, strict=True)) / total
        if n >= self.min_samples and max(us) - min(us) >= self.min_spread:
            pairs = list(zip(spans, self.samples, strict=True))
            var = sum(k * (u - mean_u) ** 2 for k, (u, _) in pairs)
            slope = sum(k * (u - mean_u) * (w - mean_w) for k, (u, w) in pairs) / var
            idle = max(mean_w - max(slope, 0.0) * mean_u, 0.0)
            return "fitted", idle, max(idle + slope, idle)
        slope = max(self.declared_busy_w - self.declared_idle_w, 0.0)
        idle = max(mean_w - slope * mean_u, 0.0)
        return "measured", idle, idle + slope

    def report(self) -> PowerReport | None:
        """What the heartbeat carries; None while no reader has said anything."""
        if self.latest_w is None and not self.rejected:
            return None
        provenance, idle, busy = self.figures()
        watts = None if self.latest_w is None else round(self.latest_w, 4)
        return PowerReport(
            provenance=provenance, source=self.source[:64], watts=watts,
            idle_w=round(idle, 4), busy_w=round(busy, 4), samples=len(self.samples),
            rejected=dict(self.rejected),
        )  # fmt: skip
