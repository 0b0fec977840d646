"""From what a device is (an archetype, a cloud instance, or its hardware) to its carbon.

Names are checked against Boavizta's own tables before anything is computed, so that a
typo is refused with the nearest known names instead of being silently fuzzy-matched to
another machine. Declared figures are checked against plausible bounds: a 10-tonne camera
is a typo, not a camera.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from orchestrator.carbon.boavizta import Boavizta, Zone
from orchestrator.errors import Invalid

DeviceKind = Literal["server", "terminal", "iot", "cloud"]
DEVICE_KINDS: tuple[str, ...] = ("server", "terminal", "iot", "cloud")

# Plausible bounds of declared figures, by tier. Boavizta's own range runs from a few kg
# (IoT sensors) to about 2.5 t (its largest GPU servers); the bounds leave room around it.
EMBODIED_BOUNDS_KG: dict[str, tuple[float, float]] = {
    "device": (0.0, 500.0),
    "edge": (0.0, 10_000.0),
    "cloud": (0.0, 30_000.0),
}
LIFETIME_BOUNDS_H = (720.0, 175_200.0)  # a month to 20 years
# The dirtiest grids in Boavizta's table are near 1,000 g/kWh; 2,000 leaves room for a
# diesel generator.
GRID_BOUNDS_G_PER_KWH = (0.0, 2_000.0)


# A Raspberry-Pi-class single-board computer in Boavizta's IoT method: a quad-core SoC,
# a few GB of RAM, Wi-Fi, Bluetooth and Ethernet on a small board with a plastic case and
# a USB power supply (HSL: Boavizta's hardware specification levels, 1 the simplest).
SBC_BLOCKS: tuple[tuple[str, str], ...] = (
    ("processing", "HSL-2"),
    ("memory", "HSL-2"),
    ("connectivity", "HSL-2"),
    ("pcb", "HSL-1"),
    ("power_supply", "HSL-1"),
    ("casing", "HSL-1"),
)


class CarbonInputError(Invalid):
    """Bad carbon input, answered with 422 naming `field`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


def nearest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    choices = list(known)
    lowered = {c.lower(): c for c in choices}
    found = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.4)
    return [lowered[f] for f in found]


def unknown(field: str, what: str, name: str, known: Iterable[str]) -> CarbonInputError:
    close = nearest(name, known)
    hint = f"; nearest known: {', '.join(close)}" if close else ""
    return CarbonInputError(field, f"unknown {what} {name!r}{hint}")


def normalize_cpu(name: str) -> str:
    """`Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz` -> `intel xeon gold 6230r`."""
    text = re.sub(r"\((r|tm)\)", " ", name, flags=re.IGNORECASE)
    text = re.sub(r"@.*$", " ", text)
    text = re.sub(r"\b(cpu|processor|\d+-core)\b", " ", text, flags=re.IGNORECASE)
    return " ".join(text.lower().split())


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    """A device as Boavizta models it. `archetype` names a row of Boavizta's server,
    user-terminal or IoT tables; `provider`/`instance` a cloud instance; the rest are
    components (an agent's inventory) that override the archetype's defaults."""

    kind: DeviceKind
    archetype: str | None = None
    provider: str | None = None
    instance: str | None = None
    cpu_name: str | None = None
    cpu_units: int | None = None
    cpu_cores: int | None = None
    ram_gb: float | None = None
    ssd_gb: float | None = None
    hdd_gb: float | None = None
    gpu_units: int | None = None
    # IoT: (functional block, HSL level) pairs, e.g. ("processing", "HSL-2")
    functional_blocks: tuple[tuple[str, str], ...] | None = None

    def provenance(self) -> str:
        if self.kind == "cloud":
            return f"boavizta:{self.provider}/{self.instance}"
        parts = []
        if self.cpu_name or self.cpu_cores:
            units = f"{self.cpu_units}x" if self.cpu_units and self.cpu_units > 1 else ""
            parts.append(f"cpu={units}{self.cpu_name or f'{self.cpu_cores} cores'}")
        for label, value in (("ram", self.ram_gb), ("ssd", self.ssd_gb), ("hdd", self.hdd_gb)):
            if value:
                parts.append(f"{label}={value:g}GB")
        if self.gpu_units:
            parts.append(f"gpu={self.gpu_units}")
        parts.extend(f"{block}={hsl}" for block, hsl in self.functional_blocks or ())
        defaults = {"server": "platform_compute_medium", "iot": "iot-device-default"}
        base = self.archetype or defaults.get(self.kind, self.kind)
        return f"boavizta:{base}" + (f"({', '.join(parts)})" if parts else "")


@dataclass(frozen=True, slots=True)
class PowerProfile:
    idle_w: float
    busy_w: float
    source: str


@dataclass(frozen=True, slots=True)
class Derived:
    embodied_kgco2e: float
    min_kgco2e: float
    max_kgco2e: float
    lifetime_h: float
    provenance: str
    power: PowerProfile | None


def check_names(boavizta: Boavizta, spec: HardwareSpec) -> HardwareSpec:
    """The spec with its CPU name in Boavizta's spelling, or CarbonInputError naming the
    field and the nearest known names."""
    cat = boavizta.catalog
    if spec.kind == "cloud":
        if not spec.provider or spec.provider not in cat.cloud:
            raise unknown("carbon.provider", "cloud provider", spec.provider or "", cat.cloud)
        if not spec.instance or spec.instance not in cat.cloud[spec.provider]:
            raise unknown(
                "carbon.instance",
                f"{spec.provider} instance type",
                spec.instance or "",
                cat.cloud[spec.provider],
            )
        return spec
    tables = {"server": cat.server, "terminal": cat.terminal, "iot": cat.iot}
    if spec.kind == "terminal" and spec.archetype is None:
        raise CarbonInputError("carbon.archetype", "a terminal needs an archetype")
    if spec.archetype is not None and spec.archetype not in tables[spec.kind]:
        raise unknown(
            "carbon.archetype", f"{spec.kind} archetype", spec.archetype, tables[spec.kind]
        )
    for block, hsl in spec.functional_blocks or ():
        levels = cat.iot_blocks.get(block)
        if levels is None:
            raise unknown("carbon.functional_blocks", "IoT functional block", block, cat.iot_blocks)
        if hsl not in levels:
            raise unknown("carbon.functional_blocks", f"{block} level", hsl, levels)
    if spec.cpu_name:
        by_norm = {normalize_cpu(c): c for c in cat.cpus}
        found = by_norm.get(normalize_cpu(spec.cpu_name))
        if found is None:
            raise unknown("carbon.cpu_name", "CPU model", spec.cpu_name, cat.cpus)
        return replace(spec, cpu_name=found)
    return spec


def derive(boavizta: Boavizta, spec: HardwareSpec) -> Derived:
    """Boavizta's embodied footprint, lifetime and power profile for a device."""
    spec = check_names(boavizta, spec)
    request: dict[str, object] = {"kind": spec.kind}
    if spec.kind == "cloud":
        request.update(provider=spec.provider, instance=spec.instance)
    else:
        if spec.archetype is not None:
            request["archetype"] = spec.archetype
        if spec.kind == "server":
            cpu = {"name": spec.cpu_name, "units": spec.cpu_units, "core_units": spec.cpu_cores}
            request["cpu"] = {k: v for k, v in cpu.items() if v is not None}
            request.update(ram_gb=spec.ram_gb, ssd_gb=spec.ssd_gb, hdd_gb=spec.hdd_gb)
            request["gpu_units"] = spec.gpu_units
        if spec.functional_blocks:
            request["functional_blocks"] = [
                {"type": block, "hsl_level": hsl} for block, hsl in spec.functional_blocks
            ]
    raw = boavizta.derive(request)
    power = raw.get("power")
    return Derived(
        embodied_kgco2e=float(raw["embodied_kgco2e"]),
        min_kgco2e=float(raw["min_kgco2e"]),
        max_kgco2e=float(raw["max_kgco2e"]),
        lifetime_h=float(raw["lifetime_h"]),
        provenance=spec.provenance(),
        power=(
            PowerProfile(float(power["idle"]), float(power["busy"]), str(power["source"]))
            if power
            else None
        ),
    )


def zone(boavizta: Boavizta, code: str, field: str = "zone") -> Zone:
    """A grid zone (Boavizta's three-letter country or region code) and its intensity."""
    zones = boavizta.catalog.zones
    found = zones.get(code) or zones.get(code.upper())
    if found is None:
        names = list(zones) + [z.name for z in zones.values()]
        raise unknown(field, "grid zone", code, names)
    return found


def check_declared(
    tier: str,
    embodied_kgco2e: float | None,
    lifetime_h: float | None,
    grid_gco2_per_kwh: float | None,
) -> None:
    """Refuse implausible declared figures, naming the field and its bounds."""
    low, high = EMBODIED_BOUNDS_KG.get(tier, EMBODIED_BOUNDS_KG["cloud"])
    checks = (
        ("embodied_kgco2e", embodied_kgco2e, low, high, f"kgCO2e for tier {tier}"),
        ("lifetime_h", lifetime_h, *LIFETIME_BOUNDS_H, "hours"),
        ("grid_gco2_per_kwh", grid_gco2_per_kwh, *GRID_BOUNDS_G_PER_KWH, "gCO2e/kWh"),
    )
    for field, value, lo, hi, unit in checks:
        if value is not None and not lo <= value <= hi:
            raise CarbonInputError(
                field, f"{value:g} is not plausible: expected {lo:g} to {hi:g} {unit}"
            )
