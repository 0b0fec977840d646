"""The last step of a re-placement: a decided candidate kept as a plan version and, when
applied, put in force through a make-before-break rollout (`orchestrator.rollouts`).

One SQL transaction: the plan version with its solver statistics and reason, the
deployments' statuses, an audit entry per placement that moved, and the rollout with the
desired states it computed (`Committed.staged`), which the planner hands to the
desired-state owner so that nobody computes them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import solver
from orchestrator import audit, rollouts, samples
from orchestrator.db.tables import Deployment, PlanVersion
from orchestrator.desired.states import StagedStates
from orchestrator.plan_versions import prune
from orchestrator.replacement import Replacement
from orchestrator.scenario_builder import Built


class StalePlan(Exception):
    """Another plan went into force between this candidate's snapshot and its commit (a
    planner whose lease ran out while it solved, paused or cut off from the lock)."""


@dataclass(frozen=True, slots=True)
class Committed:
    """What a commit wrote."""

    version: int  # the plan version kept
    revision: int | None = None  # its rollout's revision, when applied
    devices: tuple[str, ...] = ()  # the agents to wake
    staged: StagedStates | None = None  # the desired states the rollout computed


def commit(
    session: Session,
    built: Built,
    result: Replacement,
    reason: str,
    observed_at: float | None,
    *,
    timings: dict[str, float],
    base_url: str,
    plan_history: int,
) -> Committed:
    """Keep the candidate as a plan version; when applied, put it in force through a new
    rollout (`timings`: where the plan's time went before the commit, seconds)."""
    plan = result.plan
    apply = result.apply
    feasible = plan.status != solver.Status.INFEASIBLE
    # The plan in force when the scenario was read (the planner lock keeps another plan
    # from coming in between): a fleet's JSON not decoded again.
    running = {a.id: a for a in built.previous_plan.apps} if built.previous_plan else {}
    # The lock is a lease, and a lease can run out under a paused planner: the database
    # says for sure whether the plan it started from is still the one in force. The row
    # is locked, so a commit racing this one waits, then finds it out of force.
    current = session.scalar(
        select(PlanVersion.version).where(PlanVersion.in_force.is_(True)).with_for_update()
    )
    if current != built.plan_version:
        raise StalePlan(
            f"plan version {current} went into force while this candidate was solved "
            f"from version {built.plan_version}"
        )
    from_version = rollouts.routes_version(session)  # before the new row changes it
    if apply:
        session.execute(
            update(PlanVersion).where(PlanVersion.in_force.is_(True)).values(in_force=False)
        )
    stats: dict[str, Any] = dict(plan.stats or {})
    stats["waiting"] = built.waiting
    stats["decision"] = result.decision
    stats["applied"] = apply
    stats["incremental"] = result.incremental
    stats["derived_problem"] = result.derived_problem
    stats["current_objective"] = result.current_objective
    stats["broken"] = result.broken
    # Where this plan's time went before the commit (seconds): snapshot and scenario
    # (build), the pool round trip (solve), partition extraction (materialize).
    stats["timings"] = {k: round(v, 4) for k, v in timings.items()}
    unplaced = result.unplaced
    stats["unplaced"] = unplaced
    stats["degraded"] = result.degraded
    stats["unplaced_codes"] = result.unplaced_codes
    # The console's plan history reads these without parsing the documents. The live
    # scenario has every app's rate, those served degraded (outside `result.scenario`) too.
    stats["totals"] = samples.totals(built.scenario, list(plan.apps))
    row = PlanVersion(
        created_at=audit.now(),
        solver=plan.solver,
        status=plan.status.value,
        objective=plan.objective,
        bound=plan.bound,
        solve_s=float(plan.solve_s or 0.0),
        reason=f"{reason} -> {result.decision}",
        # What the plan places: the live scenario without the apps set aside, so that
        # `continuum solve` replays this very plan.
        scenario=result.scenario or built.scenario,
        plan=result.document,
        stats=stats,
        in_force=apply,
    )
    session.add(row)
    session.flush()
    # The plan in force until now is no longer flagged so, but its rollout may roll back
    # to it.
    prune(session, row.version - plan_history, built.plan_version)
    _statuses(session, built, plan, apply, feasible, unplaced, running, result.degraded)
    if not apply:
        action = "placement.infeasible" if not feasible else "placement.kept"
        why = result.decision if feasible else f"{plan.reason or 'infeasible'}"
        audit.record(
            session, "planner", action, f"plan_version:{row.version}",
            reason=f"{reason}: {why}", detail={"plan_version": row.version},
        )  # fmt: skip
        for dep_id, why in built.waiting.items():
            audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
        return Committed(row.version)
    superseded = rollouts.active(session)  # read before start() supersedes it
    known = None
    if built.plan_version is not None and built.previous_plan is not None:
        known = (built.plan_version, built.previous_plan)
    rollout, states, after = rollouts.start(
        session, row, plan, reason, observed_at, from_version, base_url, known
    )
    moved = 0
    for app in plan.apps:
        where = _where(app)
        before = running.get(app.id)
        if where == (_where(before) if before is not None else []):
            continue  # unmoved: its decision is on record with an earlier version
        moved += 1
        audit.record(
            session,
            "planner",
            "placement.decided",
            f"deployment:{app.id}",
            reason=row.reason,
            detail={
                "plan_version": row.version,
                "revision": rollout.revision,
                "model": app.model,
                "placement": where,
                "latency_ms": app.latency_ms.model_dump(),
                "energy_j": app.energy_j,
                "carbon_g": app.carbon_g,
            },
        )
    audit.record(
        session, "planner", "placement.applied", f"plan_version:{row.version}",
        reason=row.reason,
        detail={"plan_version": row.version, "revision": rollout.revision, "moved": moved,
                "unmoved": len(plan.apps) - moved, "unplaced": sorted(unplaced)},
    )  # fmt: skip
    for dep_id, why in built.waiting.items():
        audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
    for dep_id, why in unplaced.items():
        audit.record(
            session, "planner", "placement.unplaced", f"deployment:{dep_id}",
            reason=f"{reason}: {why}", detail={"plan_version": row.version},
        )  # fmt: skip
    for dep_id, why in result.degraded.items():
        audit.record(
            session, "planner", "placement.degraded", f"deployment:{dep_id}",
            reason=f"{reason}: {why}",
            detail={"plan_version": row.version, "code": result.unplaced_codes.get(dep_id)},
        )  # fmt: skip
    # Woken: the rollout's targets, whose desired state changes, and a superseded
    # rollout's, which may lose what it added; no other agent has news
    # (`orchestrator.desired.cache`).
    targets = list(rollout.acks["targets"])
    devices = sorted(set(targets) | set(superseded.targets if superseded else ()))
    assert rollout.revision is not None  # a rollout in loading has one
    staged = StagedStates(rollout.revision, states, targets, row.version, after)
    return Committed(row.version, rollout.revision, tuple(devices), staged)


def _where(app: solver.AppResult) -> list[dict[str, Any]]:
    """Where an app runs, as the audit log records it: its segments or its stages."""
    return [item.model_dump() for item in (app.segments or app.stages or [])]


def _statuses(
    session: Session,
    built: Built,
    plan: solver.PlanDoc,
    apply: bool,
    feasible: bool,
    unplaced: dict[str, str],
    running: dict[str, solver.AppResult],
    degraded: dict[str, str],
) -> None:
    placed = {app.id for app in plan.apps}
    in_scenario = {a["id"] for a in built.scenario["apps"]}
    stamp = audit.now()
    for dep in session.scalars(select(Deployment)):
        status = dep.status
        if dep.id in built.waiting:
            status = "waiting"
        elif dep.id in degraded and (apply or dep.id in running):
            status = "degraded"
        elif apply and dep.id in unplaced:
            status = "infeasible"
        elif not feasible and dep.id in in_scenario:
            # Infeasible now; what runs (if anything) keeps running and keeps its status.
            if dep.id not in running:
                status = "infeasible"
        elif apply and dep.id in placed:
            status = "placed"
        if status != dep.status:  # a fleet's deployments are not rewritten every plan
            dep.status, dep.updated_at = status, stamp


def mark_waiting(session: Session, waiting: dict[str, str], note: str) -> None:
    """Nothing to solve: the deployments that cannot be placed are waiting, with why."""
    for dep in session.scalars(select(Deployment)):
        if dep.id in waiting or dep.status == "pending":
            dep.status = "waiting"
    for dep_id, why in waiting.items():
        audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
    audit.record(session, "planner", "placement.skipped", "plan", reason=note)


def record_failure(session: Session, reason: str, error: str) -> None:
    audit.record(session, "planner", "placement.failed", "plan", reason=f"{reason}: {error}")
