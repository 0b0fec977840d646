"""What a policy decided at each of its re-plans, for people to read: `decisions.csv`.

The summary says how a policy did, not why: a user who sees `continuum` spend more energy
than `static` on the example fleet wants the moment it re-placed, what asked for it, and
the rule that decided (`orchestrator.hysteresis`). `continuum` keeps a row for each
re-plan of the control plane's path (`Replan.of`); a plug-in policy may keep its own in
a `log` attribute. Nothing measured goes in (no decide time), so the same inputs and seed
give the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.drafts import InForceNow, Solved, Written
from orchestrator.replacement import Replacement


@dataclass(frozen=True, slots=True)
class Replan:
    at_s: float
    triggers: tuple[str, ...]  # what asked, as the triggers say it
    applied: bool
    decision: str  # the hysteresis rule's reason
    in_force_objective: float | None  # the plan in force's, on the scenario of now
    candidate_objective: float | None  # of the apps placed within every limit
    set_aside: tuple[str, ...]  # apps not served
    degraded: tuple[str, ...]  # apps served degraded

    @classmethod
    def of(cls, at_s: float, triggers: list[str], result: Replacement) -> Replan:
        return cls(
            at_s, tuple(triggers), result.apply, result.decision, result.current_objective,
            _objective(result), tuple(sorted(result.unplaced)), tuple(sorted(result.degraded)),
        )  # fmt: skip


def _objective(result: Replacement) -> float | None:
    """The candidate's objective, without writing its document."""
    draft = result.draft
    if isinstance(draft, InForceNow):
        return draft.kept.objective
    if isinstance(draft, Solved):
        return draft.plan.objective
    if isinstance(draft, Written):
        value = draft.doc.get("objective")
        return float(value) if isinstance(value, int | float) else None
    return None


def log_of(policy: Any) -> list[Replan]:
    """A policy's re-plans, if it keeps them (`log`)."""
    log = getattr(policy, "log", None)
    return [r for r in log if isinstance(r, Replan)] if isinstance(log, list) else []


__all__ = ["Replan", "log_of"]
