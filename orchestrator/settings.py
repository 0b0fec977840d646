"""Every option of the control plane, from the environment (`CONTINUUM_` prefix).

With nothing set, the control plane runs embedded: a SQLite file and an in-process live
state under `data_dir`. PostgreSQL and Redis are chosen by URL.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "continuum"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUUM_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: SecretStr | None = None  # postgresql+psycopg://... ; None: SQLite in data_dir
    redis_url: str | None = None  # redis://host:6379/0 ; None: in-process live state
    # Every live-state key starts with this: control planes that share it share the
    # heartbeats and the leader lock; another prefix is another control plane.
    redis_prefix: str = Field(default="continuum:", min_length=1)
    admin_token: SecretStr | None = None  # None: generated on first start, written 0600

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = None  # how agents reach this server, for artifact URLs

    max_upload_mb: float = Field(default=600.0, gt=0)
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
    latency_drift_fraction: float = Field(default=0.5, gt=0)

    solver: str = "heuristic"
    solver_time_limit_s: float = Field(default=10.0, gt=0)
    solver_workers: int = Field(default=1, ge=1)
    # Plan versions whose scenario and plan documents are kept whole (about 0.7 MB at
    # 1,000 devices); an older one keeps its row: solver, status, objective, reason, stats.
    plan_history: int = Field(default=500, ge=1)
    # Keep the garbage collector's full passes off the latency path (orchestrator/heap.py).
    gc_freeze: bool = True

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
