"""The device's battery: read from the operating system, absent (mains), or emulated.

An emulated battery starts at a level and drains by the energy of the work the agent
actually does, by the contract's cost model: compute costs `(busy - idle) * seconds`
joules (idle power is not counted), sending S MB costs `S * j_per_mb` joules. It is
labelled `emulated` wherever it shows (enrollment, the log, `/v1/status`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

POWER_SUPPLY = Path("/sys/class/power_supply")
JOULES_PER_WH = 3600.0


class Battery(Protocol):
    emulated: bool

    def capacity_wh(self) -> float | None: ...

    def level_pct(self) -> float | None: ...

    def charging(self) -> bool | None: ...

    def charge_compute(self, seconds: float) -> None: ...

    def charge_transfer(self, megabytes: float, j_per_mb: float) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class NoBattery:
    """Mains powered."""

    emulated = False

    def capacity_wh(self) -> float | None:
        return None

    def level_pct(self) -> float | None:
        return None

    def charging(self) -> bool | None:
        return None

    def charge_compute(self, seconds: float) -> None:
        pass

    def charge_transfer(self, megabytes: float, j_per_mb: float) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"kind": "none", "emulated": False}


class EmulatedBattery:
    """Drains by the joules of the work done; thread-safe (sessions run in threads)."""

    emulated = True

    def __init__(
        self, capacity_wh: float, level_pct: float, power_idle_w: float, power_busy_w: float
    ) -> None:
        if capacity_wh <= 0 or not 0 <= level_pct <= 100:
            raise ValueError("an emulated battery needs capacity > 0 and a level in 0..100")
        self._capacity_j = capacity_wh * JOULES_PER_WH
        self._joules = self._capacity_j * level_pct / 100.0
        self._busy_extra_w = max(power_busy_w - power_idle_w, 0.0)
        self._lock = threading.Lock()
        self._charging = False
        self.compute_j = 0.0
        self.transfer_j = 0.0

    def capacity_wh(self) -> float | None:
        return self._capacity_j / JOULES_PER_WH

    def level_pct(self) -> float | None:
        with self._lock:
            return max(self._joules, 0.0) / self._capacity_j * 100.0

    def set_level(self, level_pct: float) -> None:
        """EMULATION ONLY: jump to a level (the demo's "drain the battery")."""
        with self._lock:
            self._joules = self._capacity_j * min(max(level_pct, 0.0), 100.0) / 100.0

    def charging(self) -> bool | None:
        return self._charging

    def set_charging(self, charging: bool) -> None:
        """EMULATION ONLY: plug the device in or out. While it charges, the work it does
        is paid by the charger, not the battery."""
        self._charging = charging

    def _drain(self, joules: float) -> None:
        if self._charging:
            return
        with self._lock:
            self._joules = max(self._joules - joules, 0.0)

    def charge_compute(self, seconds: float) -> None:
        joules = self._busy_extra_w * max(seconds, 0.0)
        self.compute_j += joules
        self._drain(joules)

    def charge_transfer(self, megabytes: float, j_per_mb: float) -> None:
        joules = max(megabytes, 0.0) * max(j_per_mb, 0.0)
        self.transfer_j += joules
        self._drain(joules)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "emulated",
            "emulated": True,
            "capacity_wh": self.capacity_wh(),
            "level_pct": self.level_pct(),
            "charging": self._charging,
            "drained_j": {"compute": self.compute_j, "transfer": self.transfer_j},
        }


class OsBattery:
    """The first battery under /sys/class/power_supply (Linux), else psutil's reading."""

    emulated = False

    def __init__(self, supply: Path | None) -> None:
        self._supply = supply

    @staticmethod
    def _read(path: Path) -> float | None:
        try:
            return float(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def capacity_wh(self) -> float | None:
        if self._supply is None:
            return None
        # energy_full is in µWh; charge_full (µAh) times voltage_min_design (µV) otherwise.
        energy = self._read(self._supply / "energy_full")
        if energy:
            return energy / 1e6
        charge = self._read(self._supply / "charge_full")
        volts = self._read(self._supply / "voltage_min_design")
        if charge and volts:
            return charge * volts / 1e12
        return None

    def level_pct(self) -> float | None:
        if self._supply is not None:
            level = self._read(self._supply / "capacity")
            if level is not None:
                return min(max(level, 0.0), 100.0)
        import psutil

        reading = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        return float(reading.percent) if reading is not None else None

    def charging(self) -> bool | None:
        """Whether the charger is feeding the battery: the kernel's `status` ("Charging",
        "Full" and "Not charging" all mean plugged in), else psutil's `power_plugged`."""
        if self._supply is not None:
            status = _read_text(self._supply / "status")
            if status is not None:
                return status in ("Charging", "Full", "Not charging")
        import psutil

        reading = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
        plugged = reading.power_plugged if reading is not None else None
        return bool(plugged) if plugged is not None else None

    def charge_compute(self, seconds: float) -> None:
        pass  # a real battery drains by itself

    def charge_transfer(self, megabytes: float, j_per_mb: float) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "os",
            "emulated": False,
            "supply": str(self._supply) if self._supply else "psutil",
            "capacity_wh": self.capacity_wh(),
            "level_pct": self.level_pct(),
            "charging": self.charging(),
        }


def find_os_battery(root: Path = POWER_SUPPLY) -> OsBattery | None:
    """An OsBattery when the OS reports one with a capacity, else None (mains)."""
    if root.is_dir():
        for supply in sorted(root.iterdir()):
            kind = _read_text(supply / "type")
            if kind == "Battery" and (supply / "capacity").exists():
                battery = OsBattery(supply)
                if battery.capacity_wh() is not None:
                    return battery
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def open_battery(spec: str, power_idle_w: float, power_busy_w: float) -> Battery:
    """`auto` (the OS's, or none), `none`, or `emulated:CAPACITY_WH:LEVEL_PCT`."""
    if spec == "none":
        return NoBattery()
    if spec.startswith("emulated:"):
        _, capacity, level = spec.split(":")
        return EmulatedBattery(float(capacity), float(level), power_idle_w, power_busy_w)
    found = find_os_battery()
    return found if found is not None else NoBattery()
