"""Why something is refused: a machine-readable code and a sentence.

Like the Kubernetes scheduler's `Status{code, reasons}`: every infeasible reason, every
violation of a plan and every app set aside carries one `Code` to group and count by, and
a sentence for people. The evaluator, the diagnosis, the heuristic and the exact model
use the same codes. On the wire the plan keeps the contract's `reason` and `violations`
strings and adds `reason_code` and `violation_codes` beside them (docs/solver.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Code(StrEnum):
    """The constraint family (or the limit of the search) behind a refusal."""

    COMPUTE = "compute"  # a device's compute utilization over max_utilization
    MEMORY = "memory"  # weights over a device's memory_mb
    BANDWIDTH = "bandwidth"  # a link's utilization over max_utilization
    BATTERY = "battery"  # plan power over what a battery pays beside its idle draw
    SLO = "slo"  # worst-case latency over slo_ms
    TIER = "tier"  # a host outside allowed_tiers, or no host of an allowed tier
    ACCURACY = "accuracy"  # a model under min_accuracy, or no variant that meets it
    UNREACHABLE = "unreachable"  # a transfer with no route
    STRUCTURE = "structure"  # a placement of the wrong shape: missing, wrong model, stages
    TIME_LIMIT = "time_limit"  # the time limit came before an answer (not infeasibility)


@dataclass(frozen=True, slots=True)
class Reason:
    """One refusal: its code, its sentence, and the app it blames when one is to blame
    (what `solver.partial.place_what_fits` sets aside)."""

    code: Code
    message: str
    app: str | None = None
    # The blamed app has no placement of its own that meets its tiers, routes, memory,
    # accuracy or SLO: no placement of the other apps can lift it (an incremental re-solve
    # does not re-place every app to find the same, `solver.incremental.resolve`).
    alone: bool = False
    # The heuristic's judgment, not a proof: each option it tried for the blamed app (its
    # candidates, the paths its repair tried) overflows something even without the load of
    # the apps held fixed, so re-placing them makes it no room (`solver.stuck.held_clear`).
    # Not compared: it says how the verdict was reached, not what it is.
    held_clear: bool = field(default=False, compare=False)

    def __str__(self) -> str:
        return self.message


__all__ = ["Code", "Reason"]
