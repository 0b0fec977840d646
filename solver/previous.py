"""The plan in force as scenario-v1's `previous` section (`solver.incremental` re-exports
it): what a re-solve writes when a plan document of the previous placements is wanted."""

from __future__ import annotations

from collections.abc import Mapping

from solver.document import segments_of
from solver.plan import Placement
from solver.problem import Problem
from solver.scenario import PreviousApp, PreviousPlan, PreviousSegment, PreviousStage


def previous_plan(problem: Problem, previous: Mapping[str, Placement]) -> PreviousPlan:
    """The scenario-v1 `previous` section of placements on this problem's fleet."""
    cm = problem.cost
    apps = []
    for app_id, p in previous.items():
        app = cm.apps.get(app_id)
        if app is None:
            continue
        if p.stages is not None:
            assert app.cascade is not None
            stages = tuple(
                PreviousStage.model_construct(model=st.model, device=d)
                for st, d in zip(app.cascade, p.stages, strict=True)
            )
            apps.append(PreviousApp.model_construct(id=app_id, stages=stages))
        elif p.blocks is not None:
            segs = tuple(
                PreviousSegment.model_construct(first=s.first, last=s.last, device=s.device)
                for s in segments_of(cm, p)
            )
            apps.append(PreviousApp.model_construct(id=app_id, model=p.model, segments=segs))
    return PreviousPlan.model_construct(apps=tuple(apps))


__all__ = ["previous_plan"]
