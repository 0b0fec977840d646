"""Make-before-break rollouts, durable in the `rollouts` table.

A plan version the planner applies becomes a rollout, which moves through phases; each
phase that changes what agents run publishes a new desired-state revision:

    loading    revision r1: the live routes plus the new partitions and stages. Each target
               loads and warms them and reports them ready in its heartbeat (`partitions`).
    switching  revision r2, once every target reported every new key ready: the new plan
               alone. Agents switch routes when their long poll returns r2.
    live       every alive target runs r2 (`desired_version` in its heartbeat): r2 becomes
               `live_version` in every HeartbeatAck and agents unload what r2 dropped.
    rolled_back
               loading did not finish within the rollout timeout: the previous plan again
               at a fresh revision (the half-loaded partitions retire), and the previous
               plan version is back in force.
    superseded a newer plan started its own rollout before this one finished; the newer
               one loads beside the routes that were live.

Everything the reconcile loop needs to resume lives in the row (`acks`: the keys each
target must report, the devices whose desired state changes, readiness and delivery
times, the trigger's observation time), so a control plane restarted mid-rollout picks
the rollout up from SQL and completes or rolls it back; nothing is held only in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import solver
from orchestrator import audit
from orchestrator.db.tables import PlanVersion, Rollout
from orchestrator.desired import compute
from orchestrator.plan_versions import parse_plan

ACTIVE = ("loading", "switching")


@dataclass
class RolloutView:
    """A rollout as the reconcile loop sees it (plain data, safe outside the session)."""

    id: int
    plan_version: int
    from_version: int | None
    state: str
    revision: int
    started_at: float  # epoch seconds
    pending: dict[str, list[str]] = field(default_factory=dict)  # device -> keys to load
    targets: list[str] = field(default_factory=list)  # devices whose desired state changes
    ready: dict[str, float] = field(default_factory=dict)  # device -> when it reported ready
    delivered: dict[str, float] = field(default_factory=dict)  # device -> long poll answered
    observed_at: float | None = None
    reason: str = ""
    settled: bool = False


def _epoch(stamp: datetime) -> float:
    return stamp.timestamp()


def view(row: Rollout) -> RolloutView:
    acks = row.acks or {}
    return RolloutView(
        id=row.id,
        plan_version=row.plan_version,
        from_version=row.from_version,
        state=row.state,
        revision=int(row.revision or row.plan_version),
        started_at=_epoch(row.started_at),
        pending={k: list(v) for k, v in (acks.get("pending") or {}).items()},
        targets=list(acks.get("targets") or []),
        ready=dict(acks.get("ready") or {}),
        delivered=dict(acks.get("delivered") or {}),
        observed_at=acks.get("observed_at"),
        reason=row.reason or "",
        settled=bool(acks.get("settled")),
    )


def routes_version(session: Session) -> int | None:
    """The plan version whose routes agents run (or are switching to) now."""
    rollout = compute.current_rollout(session)
    if rollout is None:
        row = compute.in_force(session)
        return row.version if row is not None else None
    if rollout.state in ("loading", "rolled_back"):
        return rollout.from_version
    return rollout.plan_version


def start(
    session: Session,
    row: PlanVersion,
    plan: solver.PlanDoc,
    reason: str,
    observed_at: float | None,
    from_version: int | None,
    base_url: str = "",
    known: tuple[int, solver.PlanDoc] | None = None,
) -> tuple[Rollout, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Put `row` (whose document is `plan`) in force through a new rollout in `loading`
    (superseding any active one); `from_version` is `routes_version` read before `row` was
    added; `known`, a plan version and its plan the caller already holds. Returns the
    rollout, every device's desired state at its revision (what `compute.compute` gives
    once this commits) and under the new plan alone (its switch), unstamped."""
    stamp = audit.now()
    for old in session.scalars(select(Rollout).where(Rollout.state.in_(ACTIVE))):
        old.state, old.finished_at = "superseded", stamp
    if from_version is None:
        old_doc = None
    elif known is not None and known[0] == from_version:
        old_doc = known[1]  # the caller has it parsed: a fleet's worth of JSON
    else:
        old_row = session.get(PlanVersion, from_version)
        old_doc = parse_plan(old_row.plan) if old_row is not None else None
    refs = compute.References(session, base_url)
    # Deployments waiting for a device that is not alive keep their last placement in
    # both (`compute.with_held`), as `compute.compute` serves them.
    if from_version is not None:
        old_doc = compute.with_held(session, old_doc, session.get(PlanVersion, from_version))
    before = compute.for_plan(session, old_doc, 0, base_url, refs)
    after = compute.for_plan(session, compute.with_held(session, plan, row), 0, base_url, refs)
    merged = compute.merge(before, after)
    targets = sorted(
        d
        for d in after.keys() | before.keys()
        if _content(merged.get(d)) != _content(before.get(d))
        or _content(after.get(d)) != _content(before.get(d))
    )
    rollout = Rollout(
        plan_version=row.version,
        from_version=from_version,
        state="loading",
        acks={
            "pending": compute.added_keys(before, after),
            "targets": targets,
            "ready": {},
            "delivered": {},
            "observed_at": observed_at,
        },
        revision=compute.next_revision(session),
        reason=reason,
        started_at=stamp,
    )
    session.add(rollout)
    session.flush()
    return rollout, merged, after


def _content(state: dict[str, Any] | None) -> Any:
    if state is None:
        return None
    return {k: v for k, v in state.items() if k != "version"}


def _row(session: Session, rollout_id: int) -> Rollout | None:
    row = session.get(Rollout, rollout_id)
    return row


def record(session: Session, rollout_id: int, key: str, device: str, at: float) -> None:
    """Record an acknowledgement (`ready` or `delivered`) of one device."""
    row = _row(session, rollout_id)
    if row is None:
        return
    acks = dict(row.acks or {})
    seen = dict(acks.get(key) or {})
    if device in seen:
        return
    seen[device] = at
    acks[key] = seen
    row.acks = acks  # a new dict: SQLAlchemy does not see in-place JSON changes


def switch(session: Session, rollout_id: int) -> int | None:
    """Every target is ready: publish the new plan alone. Returns the new revision."""
    row = _row(session, rollout_id)
    if row is None or row.state != "loading":
        return None
    row.state = "switching"
    row.revision = compute.next_revision(session)
    audit.record(
        session, "loop", "rollout.switched", f"plan_version:{row.plan_version}",
        reason="every target reported its new partitions ready",
        detail={"revision": row.revision, "acks": row.acks},
    )  # fmt: skip
    return row.revision


def settle(session: Session, rollout_id: int) -> bool:
    """Every alive target runs the rollout's revision: its routes are live everywhere."""
    row = _row(session, rollout_id)
    if row is None or row.state not in ("switching", "rolled_back"):
        return False
    acks = dict(row.acks or {})
    if acks.get("settled"):
        return False
    acks["settled"] = True
    row.acks = acks
    if row.state == "switching":
        row.state = "live"
        row.finished_at = audit.now()
    return True


def roll_back(session: Session, rollout_id: int, why: str) -> int | None:
    """Back to the plan whose routes were live, at a fresh revision."""
    row = _row(session, rollout_id)
    if row is None or row.state != "loading":
        return None
    row.state = "rolled_back"
    row.finished_at = audit.now()
    row.revision = compute.next_revision(session)
    new = session.get(PlanVersion, row.plan_version)
    if new is not None:
        new.in_force = False
        stats = dict(new.stats or {})
        stats["rolled_back"] = why
        new.stats = stats
    if row.from_version is not None:
        old = session.get(PlanVersion, row.from_version)
        if old is not None:
            old.in_force = True
    audit.record(
        session, "loop", "rollout.rolled_back", f"plan_version:{row.plan_version}",
        reason=why, detail={"revision": row.revision, "acks": row.acks},
    )  # fmt: skip
    return row.revision


def record_reaction(session: Session, rollout_id: int, reaction_ms: float) -> None:
    row = _row(session, rollout_id)
    if row is None:
        return
    acks = dict(row.acks or {})
    acks["reaction_ms"] = reaction_ms
    # Measured once: the loop re-reads the row every tick and must not measure it again.
    acks["measured_from"], acks["observed_at"] = acks.get("observed_at"), None
    row.acks = acks
    plan = session.get(PlanVersion, row.plan_version)
    if plan is not None:
        stats = dict(plan.stats or {})
        stats["reaction_ms"] = reaction_ms
        plan.stats = stats


def active(session: Session) -> RolloutView | None:
    """The newest rollout when it still needs the loop: loading, switching, or a rollback
    not yet settled."""
    row = compute.current_rollout(session)
    if row is None:
        return None
    if row.state in ACTIVE or (row.state == "rolled_back" and not (row.acks or {}).get("settled")):
        return view(row)
    return None
