"""The carbon parts of the device API (issue 14): what an operator says a device is, and
its declared figures beside the derived ones."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.wire import HardwareInventory


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _count(high: int) -> int | None:
    return Field(default=None, ge=1, le=high)


class CarbonSpecIn(_Body):
    """A device as Boavizta models it: an archetype (server, user terminal, IoT), a cloud
    instance (provider and type), or components that override the archetype's defaults."""

    kind: Literal["server", "terminal", "iot", "cloud"]
    archetype: str | None = Field(default=None, min_length=1, max_length=64)
    provider: str | None = Field(default=None, min_length=1, max_length=32)
    instance: str | None = Field(default=None, min_length=1, max_length=64)
    cpu_name: str | None = Field(default=None, min_length=1, max_length=256)
    cpu_units: int | None = _count(64)
    cpu_cores: int | None = _count(4096)
    ram_gb: float | None = Field(default=None, gt=0, le=100_000, allow_inf_nan=False)
    ssd_gb: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    hdd_gb: float | None = Field(default=None, gt=0, le=1_000_000, allow_inf_nan=False)
    gpu_units: int | None = _count(64)
    # IoT: [functional block, HSL level] pairs, e.g. ["processing", "HSL-2"]
    functional_blocks: list[tuple[str, str]] | None = Field(default=None, max_length=16)


class CarbonSplit(_Body):
    operational_g: float
    embodied_g: float
    total_g: float


class DeploymentCarbon(_Body):
    id: str
    rate_rps: float
    per_inference: CarbonSplit
    per_hour: CarbonSplit
    by_device: dict[str, CarbonSplit]  # per inference


class DeviceCarbon(_Body):
    id: str
    inferences_per_h: float  # of the deployments that compute or send on it
    per_inference: CarbonSplit
    per_hour: CarbonSplit
    embodied_kgco2e: float


class PlanCarbonView(_Body):
    """The plan in force's carbon by its cost model (scenario-v1's carbon term, split)."""

    version: int
    per_hour: CarbonSplit
    deployments: list[DeploymentCarbon]
    devices: list[DeviceCarbon]


class CarbonFigures(_Body):
    embodied_kgco2e: float | None
    lifetime_h: float | None
    grid_gco2_per_kwh: float | None


class DeviceCarbonView(_Body):
    """Where the device's carbon figures come from. The device's own `embodied_kgco2e`,
    `lifetime_h` and `grid_gco2_per_kwh` are what plans use: the declared figure when there
    is one, else the derived one."""

    zone: str | None
    spec: CarbonSpecIn | None
    declared: CarbonFigures
    derived: CarbonFigures
    embodied_provenance: str  # "declared" or "boavizta:<archetype or components>"
    power_provenance: Literal["declared", "measured", "fitted", "profile"]
    inventory: HardwareInventory | None
