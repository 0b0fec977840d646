"""Every option of the control plane, from the environment (`CONTINUUM_` prefix).

With nothing set, the control plane runs embedded: a SQLite file and an in-process live
state under `data_dir`. PostgreSQL and Redis are chosen by URL.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "continuum"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUUM_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: SecretStr | None = None  # postgresql+psycopg://... ; None: SQLite in data_dir
    # redis://[:password@]host:6379/0 ; None: in-process live state. A secret: it may
    # carry a password, so it is never logged or echoed.
    redis_url: SecretStr | None = None
    # Every live-state key starts with this: control planes that share it share the
    # heartbeats and the leader lock; another prefix is another control plane.
    redis_prefix: str = Field(default="continuum:", min_length=1)
    admin_token: SecretStr | None = None  # None: generated on first start, written 0600

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = None  # how agents reach this server, for artifact URLs

    max_upload_mb: float = Field(default=600.0, gt=0)
    # Keep every artifact's bytes in the database too, so that replicas need no shared
    # volume: one that lacks an artifact restores it from there (orchestrator/blobs.py).
    artifacts_in_database: bool = False
    enrollment_token_ttl_s: float = Field(default=3600.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    lost_after_intervals: int = Field(default=3, ge=1)
    long_poll_max_s: float = Field(default=30.0, gt=0)

    # The reconcile loop (docs/orchestrator.md): tick period (a heartbeat also wakes it),
    # leader lease, make-before-break timeout, and trigger thresholds.
    reconcile_interval_s: float = Field(default=0.2, gt=0)
    leader_ttl_s: float = Field(default=3.0, gt=0)
    rollout_timeout_s: float = Field(default=30.0, gt=0)
    link_change_fraction: float = Field(default=0.3, gt=0)
    link_smoothing: float = Field(default=0.5, gt=0, le=1)
    # A fall on a link the plan in force sends over that keeps it above its floors asks for a
    # re-plan once the falls cost the plan this share of its objective (`triggers.LinkCosts`).
    link_cost_step: float = Field(default=0.01, ge=0)
    latency_drift_fraction: float = Field(default=0.5, gt=0)
    # Links agents find to same-site neighbours (the `site` label): `manual` keeps each
    # proposal for an operator; `accept-same-site` declares it at once (audited).
    link_proposals: Literal["manual", "accept-same-site"] = "manual"

    solver: str = "heuristic"
    solver_time_limit_s: float = Field(default=10.0, gt=0)
    solver_workers: int = Field(default=1, ge=1)
    # Plan versions whose scenario and plan documents are kept whole (about 0.7 MB at
    # 1,000 devices); an older one keeps its row: solver, status, objective, reason, stats.
    plan_history: int = Field(default=500, ge=1)
    # Keep the garbage collector's full passes off the latency path (orchestrator/heap.py).
    gc_freeze: bool = True

    # Security (issue #18, resil-security): TLS, enrollment rate limits, audit retention.
    # TLS: PEM files; both or neither. With them the server speaks HTTPS only.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Enrollment attempts allowed per source address, and from all sources together, in
    # each window; over it the answer is 429 with Retry-After. Per replica (in-process).
    enroll_rate_per_source: int = Field(default=60, ge=1, le=1_000_000)
    enroll_rate_global: int = Field(default=600, ge=1, le=10_000_000)
    enroll_rate_window_s: float = Field(default=60.0, gt=0, le=86_400, allow_inf_nan=False)
    # Audit entries older than this many days, and beyond the newest this many rows, are
    # deleted by a periodic sweep; None keeps them all (by that measure).
    audit_retention_days: float | None = Field(default=90.0, gt=0, le=36_500, allow_inf_nan=False)
    audit_retention_rows: int | None = Field(default=1_000_000, ge=1, le=10**10)
    audit_sweep_interval_s: float = Field(default=3600.0, gt=0, le=86_400, allow_inf_nan=False)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both (PEM files) or neither")
        return self

    # resil-input (#18): body limits, enforced before a byte of the body is read (api/limits.py).
    # JSON bodies (heartbeats included); enrollment has its own, smaller one. Uploads use
    # max_upload_mb.
    max_json_body_kb: int = Field(default=1024, ge=16, le=64 * 1024)
    max_enroll_body_kb: int = Field(default=64, ge=4, le=1024)
    # Faults (issue 18, resil-faults). How long a control plane that just took the lead
    # (a restart, a failover) waits for devices to report before it counts any as lost
    # and re-places: longer than an agent's reconnect backoff (30 s at most), so a
    # restart does not re-plan away deployments whose agents are on their way back. It
    # ends as soon as every device has reported.
    startup_grace_s: float = Field(default=35.0, ge=0, le=3600, allow_inf_nan=False)
    # SIGTERM: long polls are answered and event streams ended at once; a request still
    # running this long after is cut, so the process exits promptly.
    shutdown_timeout_s: int = Field(default=5, ge=1, le=600)
    # At start, interrupted uploads' staging files are removed: all of them when embedded
    # (one process owns the store), else those unmodified this long (another replica on
    # a shared store may be writing one now).
    staging_sweep_after_s: float = Field(default=600.0, ge=0, le=86400, allow_inf_nan=False)
    # Carbon (issue 14, docs/carbon.md): the Python of Boavizta's own environment (None:
    # .boavizta/ beside this one's), an optional CSV of grid intensity per zone over time,
    # and the relative change in a zone's intensity that triggers a re-plan.
    boavizta_python: Path | None = None
    grid_series: Path | None = None
    grid_change_fraction: float = Field(default=0.2, gt=0)
    # The console (issue 13, docs/console.md): chart sampling (0 turns it off), how long
    # raw points and the coarse (averaged) ones are kept, the coarse bucket, and how long
    # a login session lasts.
    console_sample_interval_s: float = Field(default=15.0, ge=0, le=3600)
    console_raw_keep_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    console_coarse_s: float = Field(default=300.0, gt=0, le=86400)
    console_history_h: float = Field(default=24.0, gt=0, le=24 * 90)
    console_session_ttl_s: float = Field(default=8 * 3600.0, gt=0, le=30 * 86400)

    @cached_property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'continuum.db'}"

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def artifact_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin-token"
