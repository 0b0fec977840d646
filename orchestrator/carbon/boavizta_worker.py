"""Boavizta's own functions, run in the interpreter that has `boaviztapi` installed.

This file is a script, not part of Continuum's import graph: `orchestrator.carbon.boavizta`
starts it with the Python of the Boavizta environment (boaviztapi pins FastAPI and uvicorn
to versions older than Continuum's, so the two cannot share one environment; see
docs/carbon.md) and talks to it in JSON lines over stdin and stdout. It imports nothing
of Continuum, and Continuum never imports it.

Requests (one JSON object a line) and answers (one a line):
    {"op": "catalog"} -> archetype names, cloud instances, zones with gCO2e/kWh, CPU names
    {"op": "derive", "kind": "server"|"terminal"|"iot"|"cloud", ...} -> embodied kgCO2e,
        its min and max, lifetime hours, and a power profile where Boavizta has one
Errors come back as {"ok": false, "error": "..."}; the worker keeps running.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

# SciPy's curve fit warns when it cannot estimate a covariance; the fit is still the one
# Boavizta uses, and a warning on stderr would be noise in the control plane's log.
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402
from boaviztapi import data_dir  # noqa: E402
from boaviztapi.compute.impacts_computation import compute_impacts  # noqa: E402
from boaviztapi.data.archetype import (  # noqa: E402
    get_cloud_instance_archetype,
    get_iot_device_archetype,
    get_server_archetype,
    get_user_terminal_archetype,
)
from boaviztapi.data.factor_provider import (  # noqa: E402
    get_available_iot_hsl,
    impact_factors,
)
from boaviztapi.dto.device import Cloud, Server  # noqa: E402
from boaviztapi.dto.device import user_terminal as terminals  # noqa: E402
from boaviztapi.dto.device.device import mapper_cloud_instance, mapper_server  # noqa: E402
from boaviztapi.dto.device.iot import IoT, mapper_iot_device  # noqa: E402

# The archetype table's device_type -> the DTO class Boavizta's mapper dispatches on.
_TERMINAL_DTO = {
    "laptop": terminals.Laptop,
    "desktop": terminals.Desktop,
    "tablet": terminals.Tablet,
    "smartphone": terminals.Smartphone,
    "television": terminals.Television,
    "smartwatch": terminals.Smartwatch,
    "box": terminals.Box,
    "usb_stick": terminals.UsbStick,
    "external_hdd": terminals.ExternalHDD,
    "monitor": terminals.Monitor,
    "external_ssd": terminals.ExternalSSD,
    "vr_controller": terminals.VrController,
    "vr_headset": terminals.VrHeadset,
}


def _csv_ids(relative: str) -> list[str]:
    return [str(x) for x in pd.read_csv(os.path.join(data_dir, relative))["id"].tolist()]


def catalog() -> dict[str, Any]:
    providers_csv = os.path.join(data_dir, "archetypes/cloud/providers.csv")
    providers = [str(p) for p in pd.read_csv(providers_csv)["provider.name"]]
    cloud = {p: _csv_ids(f"archetypes/cloud/{p}.csv") for p in providers}
    zones = {}
    for code, entry in impact_factors["electricity"].items():
        gwp = entry.get("gwp") if isinstance(entry, dict) else None
        if isinstance(gwp, dict) and isinstance(gwp.get("value"), int | float):
            zones[code] = {
                "name": entry.get("country", code),
                "gco2_per_kwh": float(entry["gwp"]["value"]) * 1000.0,
                "source": str(entry["gwp"].get("source", "")),
                "year": str(entry["gwp"].get("reference_year", "")),
            }
    cpu_csv = os.path.join(data_dir, "crowdsourcing/cpu_specs.csv")
    cpus = [str(n) for n in pd.read_csv(cpu_csv)["name"]]
    return {
        "server": _csv_ids("archetypes/server.csv"),
        "terminal": _csv_ids("archetypes/user_terminal.csv"),
        "iot": _csv_ids("archetypes/iot_device.csv"),
        "iot_blocks": {b: sorted(h) for b, h in get_available_iot_hsl().items()},
        "cloud": cloud,
        "zones": zones,
        "cpus": cpus,
    }


def _gwp(model: Any, duration: float) -> dict[str, Any]:
    return compute_impacts(model=model, selected_criteria=["gwp"], duration=duration)["gwp"]


def _server_config(req: dict[str, Any]) -> dict[str, Any]:
    configuration: dict[str, Any] = {}
    cpu = req.get("cpu") or {}
    if cpu:
        configuration["cpu"] = {k: v for k, v in cpu.items() if v is not None}
    # Boavizta takes whole GB.
    if req.get("ram_gb"):
        configuration["ram"] = [{"units": 1, "capacity": max(1, round(req["ram_gb"]))}]
    disks = []
    if req.get("ssd_gb"):
        disks.append({"units": 1, "type": "ssd", "capacity": max(1, round(req["ssd_gb"]))})
    if req.get("hdd_gb"):
        disks.append({"units": 1, "type": "hdd", "capacity": max(1, round(req["hdd_gb"]))})
    if disks:
        configuration["disk"] = disks
    if req.get("gpu_units"):
        configuration["gpu"] = {"units": req["gpu_units"]}
    return configuration


def _cpu_power(cpu: Any) -> dict[str, float]:
    """Idle and busy watts of a CPU (all its sockets) by its consumption profile."""
    cpu.model_power_consumption()
    profile = cpu.usage.consumption_profile
    units = float(cpu.units.value)
    return {
        "idle": profile.apply_consumption_profile(0) * units,
        "busy": profile.apply_consumption_profile(100) * units,
        "source": f"cpu consumption profile ({cpu.name.value or 'from TDP/archetype'})",
    }


def derive(req: dict[str, Any]) -> dict[str, Any]:
    kind = req["kind"]
    power: dict[str, Any] | None = None
    if kind == "server":
        archetype = get_server_archetype(req.get("archetype") or "platform_compute_medium")
        if not archetype:
            raise LookupError(f"unknown server archetype {req.get('archetype')!r}")
        configuration = _server_config(req)
        dto = Server.model_validate({"model": {"type": "rack"}, "configuration": configuration})
        model = mapper_server(dto, archetype=archetype)
        lifetime = float(model.usage.hours_life_time.value)
        power = _cpu_power(model.cpu)
    elif kind == "terminal":
        archetype = get_user_terminal_archetype(req["archetype"])
        if not archetype:
            raise LookupError(f"unknown user-terminal archetype {req['archetype']!r}")
        device_type = str(archetype["device_type"]["default"])
        model = terminals.mapper_user_terminal(_TERMINAL_DTO[device_type](), archetype=archetype)
        lifetime = float(model.usage.hours_life_time.value)
        avg = model.usage.avg_power
        if avg.value is not None and avg.max is not None:
            power = {
                "idle": float(avg.min),
                "busy": float(avg.max),
                "source": "archetype average power range (min..max)",
            }
    elif kind == "iot":
        archetype = get_iot_device_archetype(req.get("archetype") or "iot-device-default")
        if not archetype:
            raise LookupError(f"unknown IoT archetype {req.get('archetype')!r}")
        blocks = req.get("functional_blocks") or None
        dto = IoT(functional_blocks=blocks) if blocks else IoT()
        model = mapper_iot_device(dto, archetype=archetype)
        lifetime = float(model.usage.hours_life_time.value)
    elif kind == "cloud":
        provider, instance = req["provider"], req["instance"]
        archetype = get_cloud_instance_archetype(instance, provider)
        if not archetype:
            raise LookupError(f"unknown cloud instance {instance!r} at {provider!r}")
        model = mapper_cloud_instance(
            Cloud(provider=provider, instance_type=instance), archetype=archetype
        )
        lifetime = float(model.platform.usage.hours_life_time.value)
    else:
        raise LookupError(f"unknown kind {kind!r}")
    gwp = _gwp(model, lifetime)["embedded"]
    return {
        "embodied_kgco2e": float(gwp["value"]),
        "min_kgco2e": float(gwp["min"]),
        "max_kgco2e": float(gwp["max"]),
        "lifetime_h": lifetime,
        "power": power,
        "warnings": list(gwp.get("warnings", [])),
    }


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req.get("op") == "catalog":
                answer: dict[str, Any] = {"ok": True, **catalog()}
            elif req.get("op") == "derive":
                answer = {"ok": True, **derive(req)}
            else:
                answer = {"ok": False, "error": f"unknown op {req.get('op')!r}"}
        except Exception as exc:  # every failure goes back as an answer; the worker stays up
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
