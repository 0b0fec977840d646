"""The plan: placements inside the solvers, the contract's plan document outside.

`solver.document` builds the document from an evaluation, and the `Plan` every solver
returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from solver.reasons import Code


class Status(StrEnum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one app runs.

    A partitioned app (`model` or a chosen variant) has one device per block: segments are
    the runs of equal devices. A cascade has one device per stage.
    """

    app: str
    model: str | None = None
    blocks: tuple[str, ...] | None = None
    stages: tuple[str, ...] | None = None

    @property
    def segment_count(self) -> int:
        if self.blocks is None:
            return 0
        return 1 + sum(1 for a, b in zip(self.blocks, self.blocks[1:], strict=False) if a != b)

    def hosts(self) -> set[str]:
        return set(self.blocks or ()) | set(self.stages or ())


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Segment(_Doc):
    first: str
    last: str
    device: str


class Stage(_Doc):
    model: str
    device: str


class Latency(_Doc):
    worst: float
    expected: float


class AppResult(_Doc):
    id: str
    model: str | None
    segments: list[Segment] | None
    stages: list[Stage] | None
    latency_ms: Latency
    energy_j: float
    carbon_g: float
    slo_met: bool
    migration_mb: float = 0.0


class DeviceUse(_Doc):
    id: str
    utilization: float
    memory_mb: float
    power_w: float
    battery_h: float | None


class LinkUse(_Doc):
    a: str
    b: str
    utilization: float


class PlanDoc(_Doc):
    """The contract's plan format (`scenario-v1.md`, section Plan)."""

    status: Status
    solver: str
    objective: float | None
    bound: float | None
    solve_s: float
    apps: list[AppResult]
    devices: list[DeviceUse]
    links: list[LinkUse]
    reason: str | None = None
    # Beside the contract's sentences, their codes (`solver.reasons.Code`): `reason_code`
    # for `reason`, and `violation_codes[i]` for `violations[i]`.
    reason_code: Code | None = None
    violations: list[str] | None = None
    violation_codes: list[Code] | None = None
    stats: dict[str, float | int | str] | None = None
