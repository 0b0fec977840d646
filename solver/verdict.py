"""A fast, proven infeasible verdict when the heuristic's greedy steps find no plan.

When the greedy cannot place an app, that is a hint, not a proof. The proof is cheap when
the greedy's trouble is local: an app that cannot be placed even alone, or together with
the few apps that share the resource it overflowed (the camera's battery, its uplink, the
edge box), cannot be placed in the whole scenario either, because leaving the other apps
out only relaxes the exact model. So the exact model is asked about that small group
(`solver.ilp_model.feasible`): a model of a few apps builds and solves in a fraction of a
second, where the whole model and its diagnosis take seconds. The reason names what the
greedy saw overflow: the proof says that the group does not fit, the greedy says where it
ran out of room.

Cheaper still, where a camera's battery or uplink is what overflowed: the least use each
app of that camera must make of them (`solver.usebound`), summed, already proves it when
it exceeds what they have left.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from solver import ilp_model
from solver.fastcost import CandidateRoutes, Fleet
from solver.problem import Problem, SolveOptions
from solver.reasons import Code, Reason
from solver.scenario import App
from solver.usebound import LeastUse


@dataclass(frozen=True, slots=True)
class Stuck:
    """Where the greedy steps found no room: the app, the placed apps that use what it
    overflowed, and what that was."""

    app: str
    neighbours: tuple[str, ...]
    resources: str  # what it overflowed, in words
    code: Code  # the first of those resources' family
    proof: Reason | None = None  # the reason, when a bound already proves that it cannot fit


def use_proof(
    problem: Problem,
    fleet: Fleet,
    apps: Iterable[tuple[App, CandidateRoutes]],
    room: Mapping[int, float],
    names: Mapping[int, tuple[Code, str]],
    stuck: str,
) -> Reason | None:
    """Why no plan exists, when the `apps` cannot keep their use of the compute, batteries
    and links in `room` (resource -> what is left beside the fixed apps) within it; None
    when this bound does not show it.

    For weights w >= 0 summing to 1, every plan that fits has sum over those resources of
    w[r] * use[r] / room[r] <= 1, and each app's share is at least its `LeastUse` bound;
    so a sum of bounds above 1 proves that no plan fits. Weights tried: each resource
    alone, and each pair at nine mixes (a camera's battery against its uplink)."""
    rows = sorted(room)
    bounds = [LeastUse(problem, fleet, app, routes, rows) for app, routes in apps]
    scale = {r: 1.0 / max(room[r], 1e-12) for r in rows}
    mixes: list[dict[int, float]] = [{r: scale[r]} for r in rows]
    for i, r in enumerate(rows):
        for q in rows[i + 1 :]:
            mixes += [{r: th * scale[r], q: (1 - th) * scale[q]} for th in np.linspace(0.1, 0.9, 9)]
    total = sum((b.lower(mixes) for b in bounds), np.zeros(len(mixes)))
    for weights, value in zip(mixes, total.tolist(), strict=True):
        if value > 1.0 + 1e-9:
            what = " and ".join(names[r][1] for r in weights)
            users = ", ".join(sorted(app.id for app, _ in apps))
            sentence = (
                f"app {stuck}: cannot be placed within {what}: the least use of it that "
                f"{users} can make exceeds what is left"
            )
            return Reason(names[next(iter(weights))][0], sentence, stuck)
    return None


def prove_infeasible(
    problem: Problem, options: SolveOptions, stuck: Stuck, time_limit_s: float
) -> Reason | None:
    """The reason no plan exists, when the stuck app alone, or together with its
    neighbours (the apps that share what it overflowed), provably does not fit; None when
    that is not proven within `time_limit_s`. The reason names the resources the greedy
    saw overflow."""
    if stuck.proof is not None:
        return stuck.proof
    end = time.process_time() + time_limit_s  # CPU time, as the polish's budget
    what = stuck.resources or "shared capacity"
    if ilp_model.feasible(problem, options, {stuck.app}, time_limit_s, cpu=True) is False:
        sentence = f"app {stuck.app}: cannot be placed within {what} (even alone)"
        return Reason(stuck.code, sentence, stuck.app)
    others = sorted(a for a in stuck.neighbours if a != stuck.app and a not in options.fixed)
    left = end - time.process_time()
    if not others or left <= 0.05:
        return None
    if ilp_model.feasible(problem, options, {stuck.app, *others}, left, cpu=True) is not False:
        return None
    sentence = f"app {stuck.app}: does not fit beside {', '.join(others)} ({what})"
    return Reason(stuck.code, sentence, stuck.app)


# The kinds of `fastcost`'s resource rows, in their numbering's order (n rows each, links last).
RESOURCE_KINDS = (Code.COMPUTE, Code.MEMORY, Code.BATTERY, Code.BANDWIDTH)


def resource_name(f: Fleet, r: int) -> str:
    """A person's name for resource row r of `fastcost`'s numbering."""
    if r >= 3 * f.n:
        link = f.links[r - 3 * f.n]
        return f"bandwidth of link {link.a}-{link.b}"
    return f"{RESOURCE_KINDS[r // f.n].value} of {f.ids[r % f.n]}"


__all__ = ["RESOURCE_KINDS", "Stuck", "prove_infeasible", "resource_name", "use_proof"]
