"""`lazy`: plan once, and re-plan only when the plan in force breaks a constraint.

An example of a placement policy added to `continuum simulate` from outside Continuum,
through the entry-point group `continuum.policies` (see pyproject.toml). It follows the
Protocol of `simulate.policy`: built with a `PolicyContext`, asked `decide(now)` at every
step, it answers a plan document or None (keep the plan in force).
"""

from __future__ import annotations

import solver
from simulate.policy import Moment, PolicyContext


class LazyPolicy:
    def __init__(self, context: PolicyContext) -> None:
        self.options = solver.SolveOptions(time_limit_s=context.time_limit_s, seed=context.seed)

    def decide(self, now: Moment) -> solver.PlanDoc | None:
        if now.in_force is not None:
            if not now.changed:
                return None
            # The plan in force, judged by the same evaluator as everything else.
            problem = now.problem
            placements = {a: p for a, p in self._placements(now).items() if a in problem.cost.apps}
            if solver.evaluate(problem.cost, placements, require_all=True).feasible:
                return None
        # Place what fits: an app that fits nowhere now is set aside, not the whole plan.
        return solver.place_what_fits(now.problem, self.options, "heuristic").plan.doc

    @staticmethod
    def _placements(now: Moment) -> dict[str, solver.Placement]:
        assert now.in_force is not None
        layers = {m.id: [ly.name for ly in m.layers] for m in now.problem.scenario.models}
        out: dict[str, solver.Placement] = {}
        for app in now.in_force.apps:
            if app.stages:
                out[app.id] = solver.Placement(app.id, stages=tuple(s.device for s in app.stages))
            elif app.segments and app.model in layers:
                names = layers[app.model]
                blocks = [""] * len(names)
                for seg in app.segments:
                    for k in range(names.index(seg.first), names.index(seg.last) + 1):
                        blocks[k] = seg.device
                if all(h in now.problem.cost.devices for h in blocks):
                    out[app.id] = solver.Placement(app.id, model=app.model, blocks=tuple(blocks))
        return out
