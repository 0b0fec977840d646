"""Request and response bodies of the operator API (the agents' are in `api.wire`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.wire import DEVICE_ID_PATTERN, BatterySpec, PowerSpec, Tier

ID_PATTERN = DEVICE_ID_PATTERN


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- credentials -------------------------------------------------------------------------------
class EnrollmentTokenRequest(_Body):
    ttl_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    single_use: bool = False


class EnrollmentTokenCreated(_Body):
    id: int
    token: str
    expires_at: datetime
    single_use: bool


class EnrollmentTokenInfo(_Body):
    id: int
    expires_at: datetime
    single_use: bool
    uses: int
    created_by: str
    created_at: datetime


class ApiKeyRequest(_Body):
    name: str = Field(min_length=1, max_length=128)


class ApiKeyCreated(_Body):
    id: int
    name: str
    token: str


class ApiKeyInfo(_Body):
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


# -- devices and links ------------------------------------------------------------------------
class DeviceUpdate(_Body):
    labels: dict[str, str] | None = None
    power_w: PowerSpec | None = None
    battery: BatterySpec | None = None
    grid_gco2_per_kwh: float | None = Field(default=None, ge=0)
    embodied_kgco2e: float | None = Field(default=None, ge=0)
    lifetime_h: float | None = Field(default=None, gt=0)
    gflops: float | None = Field(default=None, gt=0)
    memory_mb: float | None = Field(default=None, gt=0)


class DeviceBattery(_Body):
    capacity_wh: float
    min_pct: float
    level_pct: float | None


class DeviceView(_Body):
    id: str
    name: str
    tier: Tier
    gflops: float
    memory_mb: float
    power_w: PowerSpec  # as declared (enrollment or PATCH)
    # Issue 17: the watts it is planned with and where they come from: declared, measured
    # (the measured level, declared slope) or fitted against utilization by its agent.
    power_planned_w: PowerSpec
    power_provenance: Literal["declared", "measured", "fitted", "profile"]
    power_measured_w: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    power_source: str | None = Field(default=None, max_length=64)
    battery: DeviceBattery | None
    grid_gco2_per_kwh: float
    embodied_kgco2e: float
    lifetime_h: float
    labels: dict[str, Any]
    data_plane_url: str
    emulated: bool
    state: Literal["active", "cordoned", "draining"]
    alive: bool
    last_heartbeat: dict[str, Any] | None
    created_at: str


class LinkRequest(_Body):
    a: str = Field(pattern=ID_PATTERN)
    b: str = Field(pattern=ID_PATTERN)
    mbps: float = Field(gt=0)
    rtt_ms: float = Field(ge=0)
    j_per_mb: float = Field(default=0.0, ge=0)


class DeclaredLink(_Body):
    id: int
    a: str
    b: str
    mbps: float
    rtt_ms: float
    j_per_mb: float


class MeasuredLinkView(_Body):
    a: str
    b: str
    mbps: float
    rtt_ms: float
    at: float | None


class LinksView(_Body):
    declared: list[DeclaredLink]
    measured: list[MeasuredLinkView]


# -- models --------------------------------------------------------------------------------------
class Layer(_Body):
    name: str
    gflops: float
    params_mb: float
    out_mb: float


class ExitHeadView(_Body):
    after: str
    sha256: str
    gflops: float
    params_mb: float
    prob: float | None
    threshold: float


class ModelSummary(_Body):
    id: str
    sha256: str
    parent_id: str | None
    variant: str | None
    accuracy: float | None
    input_mb: float
    total_gflops: float
    params_mb: float
    blocks: int
    created_at: datetime


class ModelView(_Body):
    id: str
    sha256: str
    parent_id: str | None
    variant: str | None
    accuracy: float | None
    input_mb: float
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    blocks: list[Layer]
    exits: list[ExitHeadView]
    total_gflops: float
    params_mb: float
    detail: dict[str, Any]
    created_at: datetime


class VariantRequest(_Body):
    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["int8"] = "int8"
    accuracy: float | None = Field(default=None, ge=0, le=1)


class CalibrateRequest(_Body):
    # Measured probability of taking each exit (by the block it follows).
    probs: dict[str, float] = Field(min_length=1)

    @model_validator(mode="after")
    def _probabilities(self) -> CalibrateRequest:
        for after, prob in self.probs.items():
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"probs.{after}: a probability is in [0, 1] (got {prob})")
        return self


class CascadeStageIn(_Body):
    model: str = Field(pattern=ID_PATTERN)
    exit_prob: float | None = Field(default=None, ge=0, le=1)
    threshold: float | None = Field(default=None, ge=0, le=1)


class CascadeRequest(_Body):
    id: str = Field(pattern=ID_PATTERN)
    stages: list[CascadeStageIn] = Field(min_length=1)


class CascadeView(_Body):
    id: str
    stages: list[CascadeStageIn]
    created_at: datetime


# -- deployments and placement ----------------------------------------------------------------
class DeploymentRequest(_Body):
    name: str = Field(pattern=ID_PATTERN)
    model: str | None = Field(default=None, pattern=ID_PATTERN)
    variants: list[str] | None = Field(default=None, min_length=1)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)
    # A cascade's id, or its stages inline.
    cascade: str | list[CascadeStageIn] | None = None
    source: str = Field(pattern=ID_PATTERN)
    sink: str | None = Field(default=None, pattern=ID_PATTERN)
    rate_rps: float = Field(gt=0)
    slo_ms: float | None = Field(default=None, gt=0)
    allowed_tiers: list[Tier] | None = Field(default=None, min_length=1)
    max_stages: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_kind(self) -> DeploymentRequest:
        kinds = [k for k in ("model", "variants", "cascade") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of model, variants, cascade"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        return self


class DeploymentLatency(_Body):
    """Predicted against measured (issue 17): the plan's figures, the source agent's
    end-to-end figures over its last requests, and (predicted - measured p50) / p50."""

    predicted_expected_ms: float | None
    predicted_worst_ms: float | None
    measured_p50_ms: float | None
    measured_p95_ms: float | None
    measured_requests: int
    error: float | None


class DeploymentView(_Body):
    name: str
    spec: dict[str, Any]
    status: str
    reason: str | None
    placement: dict[str, Any] | None  # this deployment's entry in the plan in force
    latency: DeploymentLatency | None = None
    created_at: datetime
    updated_at: datetime
    # Only in the answer to the create request: the data-plane token callers send to
    # `POST /v1/infer/{deployment}` on the source agent (again: GET .../token).
    data_plane_token: str | None = None


class DeploymentToken(_Body):
    name: str
    data_plane_token: str


class PlacementSettingsBody(_Body):
    energy: float = Field(default=1.0, ge=0)
    carbon: float = Field(default=0.0, ge=0)
    latency: float = Field(default=0.0, ge=0)
    migration: float = Field(default=0.0, ge=0)
    horizon_h: float = Field(default=8.0, gt=0)
    max_utilization: float = Field(default=0.8, gt=0, le=1)
    hysteresis: float = Field(default=0.05, ge=0)


# -- plans ---------------------------------------------------------------------------------------
class SolveRequest(_Body):
    solver: str | None = None
    dry_run: bool = False


class SolveResult(_Body):
    version: int | None
    in_force: bool
    dry_run: bool
    note: str
    waiting: dict[str, str]
    plan: dict[str, Any] | None


class AgentRollout(_Body):
    alive: bool
    running_version: int | None
    ready: list[str]
    pending: list[str]


class RolloutView(_Body):
    state: str
    started_at: str | None
    complete: bool
    agents: dict[str, AgentRollout]


class PlanView(_Body):
    version: int
    created_at: str
    reason: str
    plan: dict[str, Any]
    # solver statistics, the hysteresis decision, and reaction_ms once measured
    stats: dict[str, Any] = {}
    revision: int = 0  # the desired-state revision agents should run
    live_version: int = 0  # the newest revision every agent has switched to
    rollout: RolloutView


class AuditView(_Body):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    detail: dict[str, Any]
