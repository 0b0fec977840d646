"""Request and response bodies of the operator API (the agents' are in `api.wire`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.carbon_schemas import CarbonSpecIn, DeviceCarbonView
from api.types import (
    MAX_GFLOPS,
    MAX_MB,
    MAX_MBPS,
    MAX_MS,
    MAX_WATTS,
    MAX_WEIGHT,
    Key,
    Labels,
    Name,
    Probability,
    UtcDatetime,
    number,
)
from api.wire import DEVICE_ID_PATTERN, PowerSpec, Tier

ID_PATTERN = DEVICE_ID_PATTERN
MAX_LIST = 16  # variants, cascade stages, allowed tiers


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- credentials -------------------------------------------------------------------------------
class EnrollmentTokenRequest(_Body):
    ttl_s: float | None = number(default=None, gt=0, le=30 * 86400)
    single_use: bool = False


class EnrollmentTokenCreated(_Body):
    id: int
    token: str
    expires_at: UtcDatetime
    single_use: bool


class EnrollmentTokenInfo(_Body):
    id: int
    expires_at: UtcDatetime
    single_use: bool
    uses: int
    created_by: str
    created_at: UtcDatetime


Role = Literal["viewer", "operator", "admin"]


class ApiKeyRequest(_Body):
    name: Name
    # viewer: reads only; operator: reads and fleet writes; admin: also operator keys.
    role: Role = "operator"


class ApiKeyCreated(_Body):
    id: int
    name: str
    token: str
    role: Role


class ApiKeyInfo(_Body):
    id: int
    name: str
    created_at: UtcDatetime
    revoked_at: UtcDatetime | None
    role: Role


# -- devices and links ------------------------------------------------------------------------
class BatteryUpdate(_Body):
    """Merged into the device's battery: a field left out keeps its value (a device with
    no battery yet needs `capacity_wh`)."""

    capacity_wh: float | None = number(default=None, gt=0, le=MAX_WATTS)
    min_pct: float | None = number(default=None, ge=0, le=100)
    # Accepted for symmetry with enrollment; the level itself comes from heartbeats.
    level_pct: float | None = number(default=None, ge=0, le=100)


class DeviceUpdate(_Body):
    labels: Labels | None = None
    power_w: PowerSpec | None = None
    battery: BatteryUpdate | None = None
    grid_gco2_per_kwh: float | None = number(default=None, ge=0, le=1e5)
    embodied_kgco2e: float | None = number(default=None, ge=0, le=1e6)
    lifetime_h: float | None = number(default=None, gt=0, le=1e6)
    gflops: float | None = number(default=None, gt=0, le=MAX_GFLOPS)
    memory_mb: float | None = number(default=None, gt=0, le=MAX_MB)
    # Carbon (docs/carbon.md): a grid zone and what the device is, for derived figures. An
    # explicit null clears it (and a declared figure above, to fall back on the derived).
    zone: str | None = Field(default=None, min_length=1, max_length=64)
    carbon: CarbonSpecIn | None = None


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
    rekey_pending: bool = False  # an operator allowed one re-enrollment without the token
    alive: bool
    last_heartbeat: dict[str, Any] | None
    created_at: UtcDatetime
    carbon: DeviceCarbonView


class LinkRequest(_Body):
    a: str = Field(pattern=ID_PATTERN)
    b: str = Field(pattern=ID_PATTERN)
    mbps: float = number(gt=0, le=MAX_MBPS)
    rtt_ms: float = number(ge=0, le=MAX_MS)
    j_per_mb: float = number(default=0.0, ge=0, le=1e6)


class PlannedLink(_Body):
    """The figures the solver uses for a link, and their source: `declared` (never
    measured), `measured` (a fresh measurement) or `remembered` (the last measurement,
    kept after probing stopped; orchestrator/live/links.py)."""

    mbps: float
    rtt_ms: float
    source: Literal["declared", "measured", "remembered"]


class DeclaredLink(_Body):
    id: int
    a: str
    b: str
    mbps: float
    rtt_ms: float
    j_per_mb: float
    # In `GET /v1/links` only: what the solver uses for it now.
    planned: PlannedLink | None = None


class MeasuredLinkView(_Body):
    """A link's remembered estimate (`mbps`, `rtt_ms`: the bottleneck of its ends'),
    the last raw measurement it moved on (`measured_*`), the newest report's time and
    age, whether that report is still fresh, and what the solver uses (None: an
    undeclared link whose measurement is no longer fresh is not planned over)."""

    a: str
    b: str
    mbps: float
    rtt_ms: float
    measured_mbps: float
    measured_rtt_ms: float
    at: float | None
    age_s: float
    fresh: bool
    planned: PlannedLink | None


class LinksView(_Body):
    declared: list[DeclaredLink]
    measured: list[MeasuredLinkView]


class LinkProposalView(_Body):
    """A link an agent found to a same-site neighbour and measured (`mbps`, `rtt_ms`),
    waiting for an operator or the `link_proposals` policy; once accepted, `link_id` is
    the declared link it became."""

    id: int
    a: str
    b: str
    proposer: str
    site: str
    mbps: float
    rtt_ms: float
    state: Literal["pending", "accepted", "rejected"]
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    link_id: int | None


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
    created_at: UtcDatetime


class VariantSpeedRatio(_Body):
    """An int8 variant's time against its source's (above 1: slower), issue 17: measured
    on the control plane's host when it was made, measured by the devices that serve it
    (over `requests`; null before any), and the one the scenario costs it by (the first
    blended with the second until 64 requests)."""

    source: str
    quantized: float
    devices: float | None
    requests: int
    planned: float


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
    created_at: UtcDatetime
    speed_ratio: VariantSpeedRatio | None = None


class VariantRequest(_Body):
    id: str = Field(pattern=ID_PATTERN)
    kind: Literal["int8"] = "int8"
    accuracy: Probability | None = None


class CalibrateRequest(_Body):
    # Measured probability of taking each exit (by the block it follows).
    probs: dict[Key, float] = Field(min_length=1, max_length=256)

    @model_validator(mode="after")
    def _probabilities(self) -> CalibrateRequest:
        for after, prob in self.probs.items():
            if not 0.0 <= prob <= 1.0:  # NaN too
                raise ValueError(f"probs.{after}: a probability is in [0, 1] (got {prob})")
        return self


class ProfileRequest(_Body):
    # Each block's measured median ms (`continuum model profile --json` on the device
    # class that will run it); empty: the control plane profiles the model on its host.
    block_ms: dict[Key, float] = Field(default_factory=dict, max_length=4096)

    @model_validator(mode="after")
    def _times(self) -> ProfileRequest:
        for block, ms in self.block_ms.items():
            if not 0.0 <= ms <= 3_600_000:  # NaN too
                raise ValueError(f"block_ms.{block}: a time in ms in [0, 3600000] (got {ms})")
        return self


class CascadeStageIn(_Body):
    model: str = Field(pattern=ID_PATTERN)
    exit_prob: Probability | None = None
    threshold: Probability | None = None


class CascadeRequest(_Body):
    id: str = Field(pattern=ID_PATTERN)
    stages: list[CascadeStageIn] = Field(min_length=1, max_length=MAX_LIST)


class CascadeView(_Body):
    id: str
    stages: list[CascadeStageIn]
    created_at: UtcDatetime


# -- deployments and placement ----------------------------------------------------------------
class DeploymentRequest(_Body):
    name: str = Field(pattern=ID_PATTERN)
    model: str | None = Field(default=None, pattern=ID_PATTERN)
    variants: list[Annotated[str, Field(pattern=ID_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=MAX_LIST
    )
    min_accuracy: Probability | None = None
    # A cascade's id, or its stages inline.
    cascade: (
        Annotated[str, Field(pattern=ID_PATTERN)]
        | Annotated[list[CascadeStageIn], Field(min_length=1, max_length=MAX_LIST)]
        | None
    ) = None
    source: str = Field(pattern=ID_PATTERN)
    sink: str | None = Field(default=None, pattern=ID_PATTERN)
    rate_rps: float = number(gt=0, le=1e6)
    slo_ms: float | None = number(default=None, gt=0, le=MAX_MS)
    allowed_tiers: list[Tier] | None = Field(default=None, min_length=1, max_length=3)
    max_stages: int | None = Field(default=None, ge=1, le=64)
    # When it cannot be placed within its battery or SLO: keep serving in the placement
    # that drains batteries least, marked `degraded` (default), or stop it.
    when_infeasible: Literal["degrade", "stop"] = "degrade"
    # When a next hop is unreachable (docs/agent.md, "Local fallback"): answer 502
    # ("none"), answer from an exit head or cascade stage the agent holds ("exit"), or that
    # and, where the source's memory allows, a whole-model copy kept on it ("local-model").
    fallback: Literal["none", "exit", "local-model"] = "none"

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
    created_at: UtcDatetime
    updated_at: UtcDatetime
    # Only in the answer to the create request: the data-plane token callers send to
    # `POST /v1/infer/{deployment}` on the source agent (again: GET .../token).
    data_plane_token: str | None = None


class DeploymentToken(_Body):
    name: str
    data_plane_token: str


class PlacementSettingsBody(_Body):
    energy: float = number(default=1.0, ge=0, le=MAX_WEIGHT)
    carbon: float = number(default=0.0, ge=0, le=MAX_WEIGHT)
    latency: float = number(default=0.0, ge=0, le=MAX_WEIGHT)
    migration: float = number(default=0.0, ge=0, le=MAX_WEIGHT)
    horizon_h: float = number(default=8.0, gt=0, le=1e5)
    max_utilization: float = number(default=0.8, gt=0, le=1)
    # The relative gain a new plan needs over the one in force: 10 is already "never".
    hysteresis: float = number(default=0.05, ge=0, le=10)


# -- plans ---------------------------------------------------------------------------------------
class SolveRequest(_Body):
    solver: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,32}$")
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
    started_at: UtcDatetime | None
    complete: bool
    agents: dict[str, AgentRollout]


class PlanView(_Body):
    version: int
    created_at: UtcDatetime
    reason: str
    plan: dict[str, Any]
    # solver statistics, the hysteresis decision, and reaction_ms once measured
    stats: dict[str, Any] = {}
    revision: int = 0  # the desired-state revision agents should run
    live_version: int = 0  # the newest revision every agent has switched to
    rollout: RolloutView


class PlanTotals(_Body):
    energy_w: float  # inference energy at the apps' rates, J/s
    carbon_gph: float  # grams CO2e per hour, embodied included
    migration_mb: float


class PlanVersionSummary(_Body):
    """One plan version in the history (`GET /v1/plans`), without its documents."""

    version: int
    created_at: str
    solver: str
    status: str
    objective: float | None
    gap: float | None  # (objective - bound) / objective, when the solver proved a bound
    solve_s: float
    trigger: str  # why it was solved, and the hysteresis decision
    applied: bool
    in_force: bool
    totals: PlanTotals | None  # None on versions made before the console existed


class AuditView(_Body):
    id: int
    at: UtcDatetime
    actor: str
    action: str
    target: str
    reason: str
    detail: dict[str, Any]
