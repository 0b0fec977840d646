"""Every option of the edge agent: flags of `continuum agent`, or the environment
(`CONTINUUM_AGENT_` prefix) for the Helm chart's DaemonSet and systemd units."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Tier = Literal["device", "edge", "cloud"]


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "continuum-agent"


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUUM_AGENT_", extra="ignore")

    server: str = "http://127.0.0.1:8080"  # the control plane's URL
    enroll_token: SecretStr | None = None  # needed only until the agent has enrolled
    name: str | None = None  # default: the host name
    tier: Tier = "device"
    labels: dict[str, str] = Field(default_factory=dict)
    power_idle_w: float = Field(default=2.0, ge=0)
    power_busy_w: float = Field(default=6.0, ge=0)
    # auto (read the OS), none (mains), or emulated:CAPACITY_WH:LEVEL_PCT
    battery: str = "auto"
    battery_min_pct: float = Field(default=20.0, ge=0, le=100)
    # None: not declared; the control plane derives them (zone, inventory; issue 14).
    grid_gco2_per_kwh: float | None = Field(default=None, ge=0)
    embodied_kgco2e: float | None = Field(default=None, ge=0)
    listen: str = "0.0.0.0:7070"  # the data plane's address
    advertise_url: str | None = None  # how peers reach the data plane; default from listen
    state_dir: Path = Field(default_factory=_default_state_dir)
    emulate_gflops: float | None = Field(default=None, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    probe_interval_s: float = Field(default=30.0, gt=0)
    max_tensor_mb: float = Field(default=64.0, gt=0)
    # Added with the data plane:
    threads: int = Field(default=0, ge=0)  # onnxruntime intra-op threads (0: its default)
    long_poll_s: float = Field(default=25.0, gt=0)  # desired-state long-poll wait
    probe_bytes: int = Field(default=262_144, ge=1024)  # bandwidth probe transfer size
    # Links no plan uses and same-site neighbours (issue 17, agents/probes.py): at most
    # one such probe per unused_probe_interval_s, uploading at most unused_probe_bytes;
    # the list of them is asked of the control plane every peers_refresh_s.
    unused_probe_interval_s: float = Field(default=60.0, gt=0)
    unused_probe_bytes: int = Field(default=65_536, ge=1024)
    peers_refresh_s: float = Field(default=60.0, gt=0)
    j_per_mb: float = Field(default=0.0, ge=0)  # transmission energy when the route's is unknown
    # Measured power (issue 17, agents/power.py). auto: read the kernel's power-supply and
    # powercap trees under these roots (not when the battery or compute is emulated: their
    # power is the declared one); none: report the declared figures only. Readings over
    # power_max_w (default by tier: 200 W device, 2 kW edge, 20 kW cloud) are dropped.
    power_readers: Literal["auto", "none"] = "auto"
    power_supply_root: Path = Path("/sys/class/power_supply")
    powercap_root: Path = Path("/sys/class/powercap")
    power_max_w: float | None = Field(default=None, gt=0)

    # Security (issue #18, resil-security). The data plane over HTTPS (PEM files, both or
    # neither); a CA bundle trusted for the control plane and next hops instead of the
    # system's; a token that opens /v1/status and /v1/emulation besides the agent's own.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_file: Path | None = None
    status_token: SecretStr | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> AgentSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (PEM files) or neither")
        return self

    # Carbon (issue 14, docs/carbon.md): the grid zone (Boavizta's code: FRA, DEU, ...),
    # and how Boavizta models this machine: auto (agents/inventory.py), server, terminal,
    # iot or cloud, with an archetype or a cloud instance when the hardware cannot tell.
    zone: str | None = None
    device_kind: Literal["auto", "server", "terminal", "iot", "cloud"] = "auto"
    archetype: str | None = None
    cloud_provider: str | None = None
    cloud_instance: str | None = None

    @field_validator("battery")
    @classmethod
    def _battery_spec(cls, value: str) -> str:
        if value in {"auto", "none"}:
            return value
        parts = value.split(":")
        if len(parts) == 3 and parts[0] == "emulated":
            try:
                capacity, level = float(parts[1]), float(parts[2])
            except ValueError:
                pass
            else:
                if capacity > 0 and 0 <= level <= 100:
                    return value
        raise ValueError("battery: use auto, none or emulated:CAPACITY_WH:LEVEL_PCT")
