"""The durable schema. Alembic migrations in `migrations/` create exactly these tables.

The hot path (heartbeats) never writes here: live figures go to the live-state store.
Secrets (agent, enrollment and operator tokens) are stored as sha256 hashes only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    tier: Mapped[str] = mapped_column(String(16))
    gflops: Mapped[float] = mapped_column(Float)
    memory_mb: Mapped[float] = mapped_column(Float)
    power_idle_w: Mapped[float] = mapped_column(Float)
    power_busy_w: Mapped[float] = mapped_column(Float)
    battery_capacity_wh: Mapped[float | None] = mapped_column(Float, nullable=True)
    battery_min_pct: Mapped[float] = mapped_column(Float, default=20.0)
    grid_gco2_per_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    embodied_kgco2e: Mapped[float] = mapped_column(Float, default=0.0)
    lifetime_h: Mapped[float] = mapped_column(Float, default=35040.0)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_plane_url: Mapped[str] = mapped_column(String(512))
    emulated: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="active")  # active|cordoned|draining
    agent_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Set by an operator's re-key: the one re-enrollment without the agent token it allows.
    rekey_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Carbon's sources (issue 14, orchestrator/carbon/devices.py). The three figures above
    # are what the scenario uses: the declared one if any, else the derived one.
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    carbon_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    inventory: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    embodied_declared_kgco2e: Mapped[float | None] = mapped_column(Float, nullable=True)
    lifetime_declared_h: Mapped[float | None] = mapped_column(Float, nullable=True)
    grid_declared_gco2_per_kwh: Mapped[float | None] = mapped_column(Float, nullable=True)
    embodied_derived_kgco2e: Mapped[float | None] = mapped_column(Float, nullable=True)
    lifetime_derived_h: Mapped[float | None] = mapped_column(Float, nullable=True)
    grid_derived_gco2_per_kwh: Mapped[float | None] = mapped_column(Float, nullable=True)
    embodied_provenance: Mapped[str] = mapped_column(
        String(512), default="declared", server_default="declared"
    )
    # Issue 17: where the power figures it is planned with come from, as last reported
    # (declared | measured | fitted | profile); the figures themselves are live state.
    power_provenance: Mapped[str] = mapped_column(
        String(16), default="declared", server_default="declared"
    )


class Link(Base):
    """A declared link; measured bandwidth and RTT live in the live-state store."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("a", "b"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    a: Mapped[str] = mapped_column(String(64))  # a < b: one row per undirected pair
    b: Mapped[str] = mapped_column(String(64))
    mbps: Mapped[float] = mapped_column(Float)
    rtt_ms: Mapped[float] = mapped_column(Float)
    j_per_mb: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LinkProposal(Base):
    """A link an agent measured to a same-site neighbour and proposes (issue 17): pending
    until an operator or the `link_proposals` policy accepts it (it becomes a declared
    link, `link_id`) or rejects it (the pair is then not proposed again)."""

    __tablename__ = "link_proposals"
    __table_args__ = (UniqueConstraint("a", "b"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    a: Mapped[str] = mapped_column(String(64))  # a < b
    b: Mapped[str] = mapped_column(String(64))
    proposer: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(128))
    mbps: Mapped[float] = mapped_column(Float)
    rtt_ms: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|accepted|rejected
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    link_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class EnrollmentToken(Base):
    __tablename__ = "enrollment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    single_use: Mapped[bool] = mapped_column(Boolean, default=False)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """Operator bearer tokens; the admin token from the environment is one of them."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # viewer (reads only) | operator (reads and fleet writes) | admin (also operator keys)
    role: Mapped[str] = mapped_column(String(16), default="operator", server_default="operator")


class Artifact(Base):
    """Bytes in the content-addressed store, by sha256."""

    __tablename__ = "artifacts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # model|partition|exit|variant
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ArtifactBlob(Base):
    """An artifact's bytes, in parts (`artifacts_in_database`): what a replica without
    the file restores it from. Written before its `Artifact` row may be: no foreign key."""

    __tablename__ = "artifact_blobs"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Model(Base):
    """An analysed ONNX model (or a variant of one): its blocks are a scenario-v1 model."""

    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # variants
    variant: Mapped[str | None] = mapped_column(String(32), nullable=True)  # e.g. "int8"
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_mb: Mapped[float] = mapped_column(Float)
    inputs: Mapped[list[Any]] = mapped_column(JSON)  # [{name, shape, dtype}]
    outputs: Mapped[list[Any]] = mapped_column(JSON)
    blocks: Mapped[list[Any]] = mapped_column(JSON)  # [{name, gflops, params_mb, out_mb}]
    total_gflops: Mapped[float] = mapped_column(Float)
    params_mb: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # quantization figures
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExitHead(Base):
    __tablename__ = "exit_heads"
    __table_args__ = (UniqueConstraint("model_id", "after"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    after: Mapped[str] = mapped_column(String(128))
    artifact_sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"))
    gflops: Mapped[float] = mapped_column(Float)
    params_mb: Mapped[float] = mapped_column(Float)
    prob: Mapped[float | None] = mapped_column(Float, nullable=True)  # measured or stated
    threshold: Mapped[float] = mapped_column(Float, default=0.8)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Cascade(Base):
    __tablename__ = "cascades"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stages: Mapped[list[Any]] = mapped_column(JSON)  # [{model, exit_prob, threshold}]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the deployment's name
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PlanVersion(Base):
    """Every plan ever decided, with the scenario it was solved from and why."""

    __tablename__ = "plan_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    solver: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    objective: Mapped[float | None] = mapped_column(Float, nullable=True)
    bound: Mapped[float | None] = mapped_column(Float, nullable=True)
    solve_s: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    scenario: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    in_force: Mapped[bool] = mapped_column(Boolean, default=False)


class Rollout(Base):
    __tablename__ = "rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_version: Mapped[int] = mapped_column(ForeignKey("plan_versions.version"))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # loading -> switching -> live; or rolled_back; or superseded by a newer rollout
    state: Mapped[str] = mapped_column(String(16))
    # targets, readiness and delivery acknowledgements per device, the trigger's time
    acks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The desired-state revision this rollout's current phase published (agents long-poll
    # on it); None on rows written before revisions existed.
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(128))  # "operator:<key name>", "agent:<id>", "loop"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConsoleSample(Base):
    """One point of the console's charts (orchestrator/samples.py): fleet-wide figures and
    each battery's level and projected hours. `resolution` "raw" rows are taken every
    sampling interval and kept briefly; "coarse" rows average a bucket of them and are
    kept for the charts' whole history."""

    __tablename__ = "console_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    resolution: Mapped[str] = mapped_column(String(8))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)


class PlacementSettings(Base):
    """Fleet-wide objective weights and horizon: a single row, id 1."""

    __tablename__ = "placement_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    energy: Mapped[float] = mapped_column(Float, default=1.0)
    carbon: Mapped[float] = mapped_column(Float, default=0.0)
    latency: Mapped[float] = mapped_column(Float, default=0.0)
    migration: Mapped[float] = mapped_column(Float, default=0.0)
    horizon_h: Mapped[float] = mapped_column(Float, default=8.0)
    max_utilization: Mapped[float] = mapped_column(Float, default=0.8)
    hysteresis: Mapped[float] = mapped_column(Float, default=0.05)
