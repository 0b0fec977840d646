"""Boavizta's own figures for the benchmark's four configurations, computed the way its
HTTP API computes them (its routers' code path: archetype lookup, DTO, mapper,
`compute_impacts` over the device's lifetime), with none of Continuum's code.

Run with the Python of Boavizta's environment (bench/carbon.py does):
    .boavizta/bin/python bench/boavizta_reference.py
Prints one JSON object: configuration name -> {embodied_kgco2e, lifetime_h}.
"""

from __future__ import annotations

import json
import warnings

warnings.filterwarnings("ignore")  # SciPy's curve fit inside Boavizta's CPU model

from boaviztapi.compute.impacts_computation import compute_impacts  # noqa: E402
from boaviztapi.data.archetype import (  # noqa: E402
    get_cloud_instance_archetype,
    get_iot_device_archetype,
    get_server_archetype,
    get_user_terminal_archetype,
)
from boaviztapi.dto.device import Cloud, Server  # noqa: E402
from boaviztapi.dto.device.device import mapper_cloud_instance, mapper_server  # noqa: E402
from boaviztapi.dto.device.iot import IoT, mapper_iot_device  # noqa: E402
from boaviztapi.dto.device.user_terminal import Smartphone, mapper_user_terminal  # noqa: E402


def embodied(model, lifetime: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    gwp = compute_impacts(model=model, selected_criteria=["gwp"], duration=lifetime)["gwp"]
    return {"embodied_kgco2e": gwp["embedded"]["value"], "lifetime_h": lifetime}


def main() -> None:
    out = {}
    pi = IoT.model_validate(
        {
            "functional_blocks": [
                {"type": t, "hsl_level": h}
                for t, h in (
                    ("processing", "HSL-2"),
                    ("memory", "HSL-2"),
                    ("connectivity", "HSL-2"),
                    ("pcb", "HSL-1"),
                    ("power_supply", "HSL-1"),
                    ("casing", "HSL-1"),
                )
            ]
        }
    )
    iot = mapper_iot_device(pi, archetype=get_iot_device_archetype("iot-device-default"))
    out["raspberry-pi-class board"] = embodied(iot, iot.usage.hours_life_time.value)
    phone = mapper_user_terminal(
        Smartphone(), archetype=get_user_terminal_archetype("smartphone-default")
    )
    out["smartphone"] = embodied(phone, phone.usage.hours_life_time.value)
    server = mapper_server(
        Server.model_validate(
            {
                "model": {"type": "rack"},
                "configuration": {
                    "cpu": {"units": 2, "core_units": 24, "name": "Intel Xeon Gold 6230R"},
                    "ram": [{"units": 1, "capacity": 384}],
                    "disk": [{"units": 1, "type": "ssd", "capacity": 1920}],
                },
            }
        ),
        archetype=get_server_archetype("platform_compute_medium"),
    )
    out["2-socket server"] = embodied(server, server.usage.hours_life_time.value)
    cloud = mapper_cloud_instance(
        Cloud(provider="aws", instance_type="p3.8xlarge"),
        archetype=get_cloud_instance_archetype("p3.8xlarge", "aws"),
    )
    out["cloud GPU instance"] = embodied(cloud, cloud.platform.usage.hours_life_time.value)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
