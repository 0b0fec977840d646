"""The wire schemas between agents and the control plane.

Agents import this module (and only this one from `api`), so it depends on pydantic alone:
no server-side import may appear here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.types import (
    MAX_BUCKETS,
    MAX_GFLOPS,
    MAX_KEYS,
    MAX_LINKS,
    MAX_MB,
    MAX_MBPS,
    MAX_MS,
    MAX_WATTS,
    Count,
    HttpUrl,
    Key,
    Labels,
    Token,
    Version,
    number,
)

Tier = Literal["device", "edge", "cloud"]
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class _Wire(BaseModel):
    # Unknown fields are errors: a typo in an agent's report must not pass silently.
    model_config = ConfigDict(extra="forbid")


class PowerSpec(_Wire):
    idle: float = number(ge=0, le=MAX_WATTS)
    busy: float = number(ge=0, le=MAX_WATTS)

    @model_validator(mode="after")
    def _busy_at_least_idle(self) -> PowerSpec:
        if self.busy < self.idle:
            raise ValueError(f"busy ({self.busy}) must be >= idle ({self.idle})")
        return self


class BatterySpec(_Wire):
    capacity_wh: float = number(gt=0, le=MAX_WATTS)
    level_pct: float = number(default=100.0, ge=0, le=100)
    min_pct: float = number(default=20.0, ge=0, le=100)


# The carbon figures an agent's operator may declare; a declared one wins over the derived.
DECLARABLE_FIGURES = ("embodied_kgco2e", "lifetime_h", "grid_gco2_per_kwh")


class Disk(_Wire):
    kind: Literal["ssd", "hdd"]
    size_gb: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)


class Gpu(_Wire):
    name: str = Field(min_length=1, max_length=128)
    memory_mb: float = Field(ge=0, le=10_000_000, allow_inf_nan=False)


class HardwareInventory(_Wire):
    """What the agent found on its machine (issue 14), for Boavizta's embodied footprint:
    /proc/cpuinfo, psutil, block devices, NVML where present. `kind` is how Boavizta
    models it; `archetype` (or `cloud_provider` and `cloud_instance`) may name the model
    outright, as the agent's operator configured it."""

    kind: Literal["server", "terminal", "iot", "cloud"] = "server"
    archetype: str | None = Field(default=None, min_length=1, max_length=64)
    cloud_provider: str | None = Field(default=None, min_length=1, max_length=32)
    cloud_instance: str | None = Field(default=None, min_length=1, max_length=64)
    cpu_model: str | None = Field(default=None, max_length=256)
    cpu_sockets: int = Field(default=1, ge=1, le=64)
    cpu_cores: int = Field(ge=1, le=4096)
    ram_gb: float = Field(gt=0, le=100_000, allow_inf_nan=False)
    disks: list[Disk] = Field(default_factory=list, max_length=64)
    gpus: list[Gpu] = Field(default_factory=list, max_length=16)
    board: str | None = Field(default=None, max_length=256)  # /proc/device-tree/model


class EnrollRequest(_Wire):
    token: Token
    name: str = Field(pattern=DEVICE_ID_PATTERN)
    tier: Tier
    gflops: float = number(gt=0, le=MAX_GFLOPS)
    memory_mb: float = number(gt=0, le=MAX_MB)
    power_w: PowerSpec
    battery: BatterySpec | None = None
    labels: Labels = Field(default_factory=dict)
    data_plane_url: HttpUrl  # http or https to a host: other agents send tensors there
    grid_gco2_per_kwh: float = number(default=0.0, ge=0, le=1e5)
    embodied_kgco2e: float = number(default=0.0, ge=0, le=1e6)
    lifetime_h: float = number(default=35040.0, gt=0, le=1e6)
    emulated: bool = False
    # Carbon (issue 14). `power_provenance` "profile": nothing measures this device's
    # power and no one declared it, so `power_w` is a stand-in the control plane replaces
    # with Boavizta's profile for the inventory when it has one.
    inventory: HardwareInventory | None = None
    zone: str | None = Field(default=None, min_length=1, max_length=64)
    power_provenance: Literal["declared", "measured", "fitted", "profile"] = "declared"


class EnrollResponse(_Wire):
    device_id: str
    agent_token: str
    heartbeat_interval_s: float


class MeasuredLink(_Wire):
    peer: str = Field(pattern=DEVICE_ID_PATTERN)
    mbps: float = number(gt=0, le=MAX_MBPS)
    rtt_ms: float = number(ge=0, le=MAX_MS)


class ProbePeer(_Wire):
    """A device this agent should probe: the other end of a link declared to it
    (`declared`) and/or a device of its site (`same_site`, a neighbour it may propose a
    link to); `token` opens the peer's `/v1/probe` (orchestrator/link_proposals.py)."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    data_plane_url: HttpUrl
    token: str = Field(min_length=1, max_length=256)
    declared: bool
    same_site: bool


class ProbePeers(_Wire):
    peers: list[ProbePeer] = Field(default_factory=list)


class LinkProposalRequest(_Wire):
    """A link to a same-site neighbour, with what this agent measured of it."""

    peer: str = Field(pattern=DEVICE_ID_PATTERN)
    mbps: float = number(gt=0, le=MAX_MBPS)
    rtt_ms: float = number(ge=0, le=MAX_MS)


class LinkProposalAck(_Wire):
    id: int
    state: Literal["pending", "accepted", "rejected"]


class LatencyHistogram(_Wire):
    """Cumulative counts since the agent started (like a Prometheus histogram): bucket i
    counts observations <= bounds_ms[i]; the last count is everything above."""

    bounds_ms: list[Annotated[float, number(ge=0, le=MAX_MS)]] = Field(max_length=MAX_BUCKETS)
    counts: list[Count] = Field(max_length=MAX_BUCKETS + 1)
    count: Count
    sum_ms: float = number(ge=0, le=1e15)


class PartitionMetrics(_Wire):
    """What one partition (or cascade stage) did since the agent started."""

    requests: Count
    compute_ms: LatencyHistogram
    # exit head (the block it follows; "stage" for a cascade stage) -> times it answered
    exits: dict[Key, Count] = Field(default_factory=dict, max_length=MAX_BUCKETS)
    errors: Count = 0
    # Optional (issue 17): the mean compute time of the last requests with the slowest and
    # fastest quarter left out: robust to stalls, and follows a change within a window.
    recent_ms: float | None = Field(default=None, ge=0, le=3_600_000, allow_inf_nan=False)
    recent_count: int = Field(default=0, ge=0, le=10_000)
    # Optional (issue 17): the same over each request's time here beyond compute and the
    # hops after it, from its first byte in to its answer's last byte out (receiving,
    # decoding, framing, answering): the contract's overhead_ms.
    overhead_ms: float | None = Field(default=None, ge=0, le=3_600_000, allow_inf_nan=False)
    overhead_count: int = Field(default=0, ge=0, le=10_000)


class PowerReport(_Wire):
    """The agent's measured power (agents/power.py): the latest reading, and idle and busy
    watts fitted against utilization (`fitted`), or the measured level with the declared
    slope (`measured`); `declared` when every reading so far was dropped. The server checks
    these again before they reach a scenario."""

    provenance: Literal["declared", "measured", "fitted"]
    source: str = Field(default="", max_length=64)  # e.g. "rapl", "power_supply:BAT0"
    watts: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    idle_w: float = Field(ge=0, le=1e6, allow_inf_nan=False)
    busy_w: float = Field(ge=0, le=1e6, allow_inf_nan=False)
    samples: int = Field(default=0, ge=0, le=1_000_000)
    # Readings dropped by reason (nan, negative, absurd, clock) since the agent started.
    rejected: dict[str, int] = Field(default_factory=dict, max_length=8)


class RequestLatency(_Wire):
    """A deployment's requests as its source agent served them (issue 17): from the
    client's request arriving to the answer being ready, over the last requests."""

    requests: int = Field(ge=0)  # since the agent started
    window: int = Field(ge=0, le=10_000)  # how many the figures cover
    p50_ms: float = Field(ge=0, le=3_600_000, allow_inf_nan=False)
    p95_ms: float = Field(ge=0, le=3_600_000, allow_inf_nan=False)


class UnreachablePeer(_Wire):
    """A next hop this agent could not reach on the data plane (and answered without, or
    failed): the control plane counts the peer lost unless it heartbeats after this."""

    peer: str = Field(pattern=DEVICE_ID_PATTERN)
    # Seconds since the last failed attempt, by the agent's clock: the control plane dates
    # the report by its own clock (agents' clocks may be off).
    age_s: float = number(ge=0, le=86_400)
    error: str = Field(default="", max_length=256)


class Heartbeat(_Wire):
    battery_pct: float | None = number(default=None, ge=0, le=100)
    # Optional: plugged in (None: the agent cannot tell, or has no battery). A charging
    # device is planned as mains powered; starting or stopping is a re-planning trigger.
    charging: bool | None = None
    # Busy seconds per second: above 1 when several threads compute at once.
    utilization: float | None = number(default=None, ge=0, le=1e3)
    free_memory_mb: float | None = number(default=None, ge=0, le=MAX_MB)
    links: list[MeasuredLink] = Field(default_factory=list, max_length=MAX_LINKS)
    # Partition (or cascade stage) key -> loaded and serving.
    partitions: dict[Key, bool] = Field(default_factory=dict, max_length=MAX_KEYS)
    # The desired-state version the agent currently runs.
    desired_version: Version = 0
    # Optional (added for the data plane): per-partition latency and exit counts, keyed
    # like `partitions`, so predictions can be checked against what ran.
    metrics: dict[Key, PartitionMetrics] = Field(default_factory=dict, max_length=MAX_KEYS)
    # Optional (issue 17): measured power; absent where the platform gives no reading.
    power: PowerReport | None = None
    # Optional (issue 17): end-to-end latency of the deployments whose source this is.
    requests: dict[str, RequestLatency] = Field(default_factory=dict)
    # Optional (issue 18): next hops that failed lately (local fallback at the edge).
    unreachable: list[UnreachablePeer] = Field(default_factory=list, max_length=MAX_LINKS)


class HeartbeatAck(_Wire):
    desired_version: int
    interval_s: float
    # Optional: the newest plan version whose routes are all ready and switched to. An
    # agent unloads partitions the desired state no longer lists once this reaches the
    # version that dropped them (make-before-break). None: the server does not say, and
    # the agent waits one long-poll cycle instead.
    live_version: int | None = None


class Endpoint(_Wire):
    """A device's data plane, where tensors or results are sent."""

    device_id: str
    data_plane_url: str


class ArtifactRef(_Wire):
    sha256: str = Field(pattern=SHA256_PATTERN)
    url: str  # /v1/artifacts/{sha256}, absolute when the server knows its public URL
    size: int


class NextHop(_Wire):
    """Where a partition's output (or a cascade stage's input on a miss) goes next."""

    device_id: str
    data_plane_url: str
    key: str  # the partition or stage key on that device
    # Optional: energy per MB sent over this route (the contract's j_per_mb); an emulated
    # battery drains by it. None: the agent's configured default.
    j_per_mb: float | None = Field(default=None, ge=0)


class ExitHeadSpec(_Wire):
    after: str
    artifact: ArtifactRef
    threshold: float
    prob: float | None


class PartitionSpec(_Wire):
    key: str  # "{deployment}/{model}/{first_index}-{last_index}"
    deployment: str
    model: str
    first: str
    last: str
    first_index: int
    last_index: int
    artifact: ArtifactRef
    exits: list[ExitHeadSpec]
    next_hop: NextHop | None  # None: the last partition, its output goes to the sink
    sink: Endpoint
    data_plane_token: str
    # The deployment's `fallback` is not "none": when the next hop is unreachable, answer
    # from what is held here (the last exit head run), marked degraded.
    fallback: bool = False


class CascadeStageSpec(_Wire):
    key: str  # "{deployment}/stage{index}"
    deployment: str
    index: int
    model: str
    artifact: ArtifactRef
    exit_prob: float | None
    threshold: float | None
    next_stage: NextHop | None  # None: the last stage always answers
    sink: Endpoint
    data_plane_token: str
    # As `PartitionSpec.fallback`: this stage answers itself when the next is unreachable.
    fallback: bool = False


class SourceSpec(_Wire):
    """A deployment whose inputs this device produces: where to send them."""

    deployment: str
    rate_rps: float
    first_hop: NextHop
    data_plane_token: str
    # `fallback: local-model`: the key of the whole model kept here (in `partitions`),
    # which answers, marked degraded, when the route beyond this device is unreachable.
    fallback_key: str | None = None


class SinkSpec(_Wire):
    """A deployment whose results this device receives (when the sink is not the source)."""

    deployment: str
    data_plane_token: str


class DesiredState(_Wire):
    device_id: str
    # Monotonic: the plan version in force when this state was computed (0: no plan).
    version: int
    partitions: list[PartitionSpec] = Field(default_factory=list)
    cascade_stages: list[CascadeStageSpec] = Field(default_factory=list)
    sources: list[SourceSpec] = Field(default_factory=list)
    # Optional (added for the data plane): deployments whose results come here, so that
    # this device's agent can check the token on `POST /v1/results/{deployment}`.
    sinks: list[SinkSpec] = Field(default_factory=list)
