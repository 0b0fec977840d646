"""When a new plan replaces the plan in force.

The rule: re-solve on every trigger, but apply the candidate only when
1. the plan in force breaks a constraint under the conditions now observed (it must go);
   with `MEND_MIN_S` set (a research knob, off), not when it breaks batteries alone and
   the candidate, costing more than the margin, keeps them for less than that as they
   drain at its own draw (`Mend`): that candidate is judged as in 2; or
2. the candidate improves the objective of the plan in force, both evaluated on the same
   current scenario with the migration weight charging the candidate for what it moves,
   by more than `margin` (relative, default 5%); or
3. apps just set aside for their pack, which the plan in force had placed within every
   limit, run elsewhere in the candidate, served degraded, and the whole plan, their terms
   included, improves by more than `margin` (`set_aside_moves`): an app served degraded
   is outside the objective, so 2 never moved it from where keeping its pack had put it.

Why this never flaps: under unchanged conditions, going A -> B needs
obj(B) + migration(A -> B) < (1 - margin) obj(A), and going back B -> A would need
obj(A) + migration(B -> A) < (1 - margin) obj(B); both together give
obj(A) < (1 - margin)^2 obj(A), impossible for a non-negative objective. Conditions that
oscillate are damped upstream: triggers fire on smoothed figures (`orchestrator.triggers`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import solver

DEFAULT_MARGIN = 0.05
# The least time a candidate that costs more than the margin must keep the packs the plan
# in force breaks to go in force for that alone; 0: any candidate goes. Off, because the
# optimum under a pack's budget sits at that budget, so as the pack drains every such
# candidate keeps it minutes: at 600 s, continuum spends what static does over the example
# fleet's calm shift (not 2.9% more), but `continuum demo`'s drained camera is no longer
# re-placed, and the plan in force keeps breaking a pack a candidate would keep for a while
# (bench/RESULTS.md, "Short mends"). Constraints come first (scenario-v1). Set by
# bench/simulate.py and bench/continuum_day.py (`--mend-min-s`).
MEND_MIN_S = 0.0
# Whether the exception asks the candidate to cost more than the margin (`--mend-any`: no).
MEND_ONLY_WHEN_COSTLIER = True


@dataclass(frozen=True, slots=True)
class Decision:
    apply: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Mend:
    """How long a candidate keeps the packs the plan in force breaks: the shortest, `s`
    seconds, is `device`'s."""

    s: float
    device: str


def pack_mend(
    problem: solver.Problem, packs: Collection[str], candidate: solver.Evaluation
) -> Mend | None:
    """How long `candidate` keeps `packs` (devices of `problem`) within their battery
    limits as they drain at its draw; None when it keeps them whatever their level (it
    draws nothing from them). A pack's budget `usable_wh / horizon_h - idle` falls by
    `(idle + power) / horizon_h` watts an hour while the plan's `power` is within it, so it
    is kept for `(budget - power) * horizon_h / (idle + power)` hours."""
    horizon_h = problem.cost.scenario.horizon_h
    least: Mend | None = None
    for d in sorted(packs):
        power = candidate.power_w.get(d, 0.0)
        budget = problem.cost.battery_limit_w(d)
        if power <= 0.0 or budget is None:
            continue  # a pack the candidate does not draw from is within its limit at 0
        draw = problem.cost.devices[d].power_w.idle + power
        s = max(0.0, budget - power) * horizon_h * 3600.0 / draw
        if least is None or s < least.s:
            least = Mend(s, d)
    return least


def decide(
    current_objective: float | None,
    current_broken: list[str],
    candidate_objective: float | None,
    candidate_feasible: bool,
    margin: float = DEFAULT_MARGIN,
    mend: Mend | None = None,
) -> Decision:
    """Whether to replace the plan in force (objective None: there is none). `mend`: when
    the plan in force breaks batteries alone, how long the candidate keeps them."""
    if not candidate_feasible or candidate_objective is None:
        if current_objective is None or current_broken:
            return Decision(False, "no feasible plan: keeping what runs")
        return Decision(False, "the candidate breaks a constraint")
    if current_objective is None:
        return Decision(True, "first plan")
    why = ""
    if current_broken:
        if mend is None or not _short(mend, current_objective, candidate_objective, margin):
            return Decision(True, f"the plan in force breaks a constraint: {current_broken[0]}")
        rise = candidate_objective / current_objective - 1.0 if current_objective else 0.0
        why = (
            f"the plan in force breaks a constraint ({current_broken[0]}), but the candidate "
            f"keeps {mend.device}'s pack for {mend.s:.0f} s only (< {MEND_MIN_S:.0f} s) at "
            f"{rise:.1%} more objective: judged on its objective; "
        )
    if candidate_objective < (1.0 - margin) * current_objective:
        gain = 1.0 - candidate_objective / current_objective if current_objective else 0.0
        return Decision(True, f"{why}improves the objective by {gain:.1%} (> {margin:.0%})")
    return Decision(
        False, f"{why}improvement below the {margin:.0%} margin: keeping the plan in force"
    )


def set_aside_moves(
    current: float, there: float, candidate: float, elsewhere: float, margin: float
) -> Decision | None:
    """Rule 3: the plan in force's objective `current` and the candidate's `candidate`,
    each with the terms of the apps just set aside where it runs them (`there`,
    `elsewhere`, migration charged); a decision to apply (its reason a format string for
    the apps' names), or None."""
    whole_now, whole = current + there, candidate + elsewhere
    if not whole < (1.0 - margin) * whole_now:
        return None
    gain = 1.0 - whole / whole_now
    return Decision(
        True,
        f"set aside now, {{}} runs degraded where the whole plan costs {gain:.1%} less "
        f"(> {margin:.0%}) than where it ran within its limits",
    )


def _short(mend: Mend, current: float, candidate: float, margin: float) -> bool:
    if mend.s >= MEND_MIN_S:
        return False
    return not MEND_ONLY_WHEN_COSTLIER or candidate > (1.0 + margin) * current
