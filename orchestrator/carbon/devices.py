"""A device's carbon figures: what was declared, what Boavizta derives, and what the plan uses.

The scenario reads three figures per device (`embodied_kgco2e`, `lifetime_h`,
`grid_gco2_per_kwh`); each is the operator's declared figure when there is one, else the
derived one (Boavizta's embodied footprint and lifetime for the device's archetype, cloud
instance or hardware; its grid mix for the device's zone), else the contract's default.
Both are kept, so the API shows the declared figure beside the derived one. Power: a
device whose agent has nothing to measure it with asks for its profile, and gets Boavizta's
idle and busy watts (provenance `profile`) when there is one.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from orchestrator.carbon.boavizta import Boavizta, BoaviztaError, BoaviztaUnavailable
from orchestrator.carbon.derive import (
    DEVICE_KINDS,
    SBC_BLOCKS,
    CarbonInputError,
    HardwareSpec,
    check_declared,
    derive,
    zone,
)

DEFAULT_LIFETIME_H = 35040.0  # scenario-v1's default
log = logging.getLogger("continuum.carbon")


@dataclass(frozen=True, slots=True)
class CarbonInput:
    """Everything about a device's carbon that is given, not derived."""

    tier: str
    zone: str | None = None
    spec: HardwareSpec | None = None
    embodied_kgco2e: float | None = None  # declared
    lifetime_h: float | None = None  # declared
    grid_gco2_per_kwh: float | None = None  # declared
    power_from_profile: bool = False


def spec_from_json(raw: dict[str, Any] | None, field: str = "carbon") -> HardwareSpec | None:
    if not raw:
        return None
    kind = raw.get("kind")
    if kind not in DEVICE_KINDS:
        raise CarbonInputError(f"{field}.kind", f"must be one of {', '.join(DEVICE_KINDS)}")
    blocks = raw.get("functional_blocks")
    values = {k: v for k, v in raw.items() if k != "functional_blocks"}
    return HardwareSpec(
        **values,
        functional_blocks=tuple((str(b), str(h)) for b, h in blocks) if blocks else None,
    )


def spec_to_json(spec: HardwareSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    raw = {k: v for k, v in asdict(spec).items() if v is not None}
    if spec.functional_blocks:
        raw["functional_blocks"] = [list(pair) for pair in spec.functional_blocks]
    return raw


def resolve(boavizta: Boavizta | None, given: CarbonInput) -> dict[str, Any]:
    """The device's carbon columns for `given`. Blocks on Boavizta: call in a thread.

    Raises CarbonInputError (422) for an unknown name or an implausible declared figure,
    BoaviztaUnavailable (503) when a derivation is asked for and Boavizta is not here."""
    check_declared(given.tier, given.embodied_kgco2e, given.lifetime_h, given.grid_gco2_per_kwh)
    columns: dict[str, Any] = {
        "zone": given.zone,
        "carbon_spec": spec_to_json(given.spec),
        "embodied_declared_kgco2e": given.embodied_kgco2e,
        "lifetime_declared_h": given.lifetime_h,
        "grid_declared_gco2_per_kwh": given.grid_gco2_per_kwh,
        "embodied_derived_kgco2e": None,
        "lifetime_derived_h": None,
        "grid_derived_gco2_per_kwh": None,
    }
    needs = given.spec is not None or given.zone is not None
    if needs and boavizta is None:
        raise CarbonInputError("carbon", "no Boavizta environment configured")
    derived = derive(boavizta, given.spec) if boavizta and given.spec else None
    grid = zone(boavizta, given.zone).gco2_per_kwh if boavizta and given.zone else None
    if given.zone is not None and boavizta is not None:
        columns["zone"] = zone(boavizta, given.zone).code
    if derived is not None:
        columns["embodied_derived_kgco2e"] = derived.embodied_kgco2e
        columns["lifetime_derived_h"] = derived.lifetime_h
    columns["grid_derived_gco2_per_kwh"] = grid
    columns["embodied_provenance"] = (
        "declared" if given.embodied_kgco2e is not None or derived is None else derived.provenance
    )
    columns["embodied_kgco2e"] = _first(
        given.embodied_kgco2e, columns["embodied_derived_kgco2e"], 0.0
    )
    columns["lifetime_h"] = _first(
        given.lifetime_h, columns["lifetime_derived_h"], DEFAULT_LIFETIME_H
    )
    columns["grid_gco2_per_kwh"] = _first(given.grid_gco2_per_kwh, grid, 0.0)
    if given.power_from_profile and derived is not None and derived.power is not None:
        columns["power_idle_w"] = round(derived.power.idle_w, 3)
        columns["power_busy_w"] = round(derived.power.busy_w, 3)
        columns["power_provenance"] = "profile"
    return columns


def _first(*values: float | None) -> float:
    for v in values:
        if v is not None:
            return float(v)
    raise AssertionError("the last value is a default")


def spec_from_inventory(inv: dict[str, Any]) -> HardwareSpec:
    """How Boavizta models what an agent found on its machine."""
    kind = inv.get("kind", "server")
    if kind == "cloud":
        return HardwareSpec(
            kind="cloud", provider=inv.get("cloud_provider"), instance=inv.get("cloud_instance")
        )
    if kind == "iot":
        blocks = None if inv.get("archetype") else SBC_BLOCKS
        return HardwareSpec(kind="iot", archetype=inv.get("archetype"), functional_blocks=blocks)
    if kind == "terminal":
        return HardwareSpec(kind="terminal", archetype=inv.get("archetype"))
    disks = inv.get("disks") or []
    sockets = int(inv.get("cpu_sockets") or 1)
    return HardwareSpec(
        kind="server",
        archetype=inv.get("archetype"),
        cpu_name=inv.get("cpu_model") or None,
        cpu_units=sockets,
        cpu_cores=max(1, int(inv["cpu_cores"]) // sockets),
        # Whole GB, as Boavizta takes them (a 25.3 GB machine is a 25 GB one).
        ram_gb=float(max(1, round(float(inv["ram_gb"])))),
        ssd_gb=float(round(sum(float(d["size_gb"]) for d in disks if d["kind"] == "ssd"))) or None,
        hdd_gb=float(round(sum(float(d["size_gb"]) for d in disks if d["kind"] == "hdd"))) or None,
        gpu_units=len(inv.get("gpus") or []) or None,
    )


DECLARABLE = ("embodied_kgco2e", "lifetime_h", "grid_gco2_per_kwh")


def enroll_carbon(
    boavizta: Boavizta | None, request: dict[str, Any], before: CarbonInput | None = None
) -> dict[str, Any]:
    """The carbon columns of an enrolling device. `request["declared"]` lists the figures
    the agent's operator set. A CPU model Boavizta does not know (an agent cannot choose
    its CPU) falls back to the core count; a bad zone or archetype, which someone
    configured, is refused. Without Boavizta the declared figures stand alone.

    `before`: what a re-enrolling device had. Its zone, spec and declared figures stay
    unless the agent sends its own (an agent re-enrolls after losing its credential: what
    an operator set through the API must survive that)."""
    declared = set(request.get("declared") or ())
    inventory = request.get("inventory")
    spec = spec_from_inventory(inventory) if inventory else None
    wants_profile = request.get("power_provenance") == "profile"
    figures = {f: request.get(f) for f in DECLARABLE if f in declared}
    if before is not None:
        for f in DECLARABLE:
            if f not in figures:
                figures[f] = getattr(before, f)
    given = CarbonInput(
        tier=request["tier"],
        zone=request.get("zone") or (before.zone if before else None),
        spec=spec or (before.spec if before else None),
        power_from_profile=wants_profile,
        **figures,
    )
    try:
        columns = resolve(boavizta, given)
    except CarbonInputError as exc:
        if exc.field != "carbon.cpu_name" or spec is None:
            raise
        columns = resolve(boavizta, replace(given, spec=replace(spec, cpu_name=None)))
    except (BoaviztaUnavailable, BoaviztaError) as exc:
        # Enrollment goes on without derived figures: the agent cannot fix either.
        log.warning("carbon of %s not derived: %s", request.get("name"), exc)
        columns = resolve(None, replace(given, zone=None, spec=None))
        columns["zone"] = given.zone
    columns["inventory"] = inventory
    if "power_provenance" not in columns:
        # No profile to replace the stand-in: it stays, as the figure the agent was given.
        columns["power_provenance"] = (
            "declared" if wants_profile else request.get("power_provenance", "declared")
        )
    return columns
