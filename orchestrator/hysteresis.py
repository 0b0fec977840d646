"""When a new plan replaces the plan in force.

The rule: re-solve on every trigger, but apply the candidate only when
1. the plan in force breaks a constraint under the conditions now observed (it must go), or
2. the candidate improves the objective of the plan in force, both evaluated on the same
   current scenario with the migration weight charging the candidate for what it moves,
   by more than `margin` (relative, default 5%).

Why this never flaps: under unchanged conditions, going A -> B needs
obj(B) + migration(A -> B) < (1 - margin) obj(A), and going back B -> A would need
obj(A) + migration(B -> A) < (1 - margin) obj(B); both together give
obj(A) < (1 - margin)^2 obj(A), impossible for a non-negative objective. Conditions that
oscillate are damped upstream: triggers fire on smoothed figures (`orchestrator.triggers`).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MARGIN = 0.05


@dataclass(frozen=True, slots=True)
class Decision:
    apply: bool
    reason: str


def decide(
    current_objective: float | None,
    current_broken: list[str],
    candidate_objective: float | None,
    candidate_feasible: bool,
    margin: float = DEFAULT_MARGIN,
) -> Decision:
    """Whether to replace the plan in force (objective None: there is none)."""
    if not candidate_feasible or candidate_objective is None:
        if current_objective is None or current_broken:
            return Decision(False, "no feasible plan: keeping what runs")
        return Decision(False, "the candidate breaks a constraint")
    if current_objective is None:
        return Decision(True, "first plan")
    if current_broken:
        return Decision(True, f"the plan in force breaks a constraint: {current_broken[0]}")
    if candidate_objective < (1.0 - margin) * current_objective:
        gain = 1.0 - candidate_objective / current_objective if current_objective else 0.0
        return Decision(True, f"improves the objective by {gain:.1%} (> {margin:.0%})")
    return Decision(False, f"improvement below the {margin:.0%} margin: keeping the plan in force")
