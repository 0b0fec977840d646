"""Stored plan versions: their plan documents parsed, and their retention.

The plan document is stored as the contract's JSON and parsed here, once per read, into
the solver's typed `PlanDoc`; nothing downstream reads the JSON.

Retention: the newest versions are kept whole, older ones keep their row.

A plan version holds the scenario it was solved from and the plan document (about 0.7 MB
at 1,000 devices). Beyond `plan_history` versions, a version keeps its row (solver,
status, objective, bound, reason, statistics) and loses both documents, unless it is in
force or a recent rollout moves from or to it.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, update
from sqlalchemy.orm import Session

import solver
from orchestrator.db.tables import PlanVersion, Rollout

# Prune this many versions below the history's edge on every commit: each commit moves the
# edge by one, and a version protected when it reached the edge is pruned on a later pass.
_PRUNE_WINDOW = 10
PRUNED = {"pruned": True}


_APPS: TypeAdapter[list[solver.AppResult]] = TypeAdapter(list[solver.AppResult])


def parse_plan(document: dict[str, Any]) -> solver.PlanDoc | None:
    """A stored plan document as the solver's typed plan; None when it was pruned."""
    if "status" not in document:
        return None
    return solver.PlanDoc.model_validate(document)


def parse_apps(document: dict[str, Any]) -> list[solver.AppResult]:
    """Only the apps of a stored plan document, typed: for readers of placements alone,
    which need not pay for the fleet's device and link figures (at 1,000 devices those
    are most of a document and nearly all of its parsing time)."""
    return _APPS.validate_python(document.get("apps") or [])


def prune(session: Session, edge: int, keep: int | None) -> None:
    """Drop the scenario and plan documents of the versions at and just below `edge`,
    except the plan in force, `keep`, and the plans recent rollouts move from or to."""
    if edge < 1:
        return
    recent = session.scalars(select(Rollout).order_by(Rollout.id.desc()).limit(3))
    protected = {v for r in recent for v in (r.plan_version, r.from_version) if v is not None}
    if keep is not None:
        protected.add(keep)
    session.execute(
        update(PlanVersion)
        .where(
            PlanVersion.version.between(edge - _PRUNE_WINDOW, edge),
            PlanVersion.in_force.is_(False),
            PlanVersion.version.not_in(protected),
        )
        .values(scenario={}, plan=PRUNED)
    )
