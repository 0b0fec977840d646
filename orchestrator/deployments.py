"""Deployments (what operators ask to run) and the fleet-wide placement settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, load_only

import solver
from orchestrator import audit, tokens
from orchestrator.catalog import check_id, check_stages, model_exists
from orchestrator.db.tables import (
    AuditEntry,
    Cascade,
    Deployment,
    Device,
    PlacementSettings,
    PlanVersion,
)
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.plan_versions import parse_apps, parse_plan

# The data-plane token is a secret the agents of one deployment share; it lives in the
# spec so that every replica hands out the same one, and is stripped from API answers.
TOKEN_KEY = "data_plane_token"
PLACEMENT_FIELDS = (
    "energy",
    "carbon",
    "latency",
    "migration",
    "horizon_h",
    "max_utilization",
    "hysteresis",
)


def create_deployment(session: Session, actor: str, spec: dict[str, Any]) -> Deployment:
    name = check_id(spec["name"], "name")
    if session.get(Deployment, name) is not None:
        raise Conflict(f"a deployment {name!r} already exists")
    kinds = [k for k in ("model", "variants", "cascade") if spec.get(k) is not None]
    if len(kinds) != 1:
        raise Invalid(
            "model: give exactly one of model, variants, cascade"
            + (f" (got {', '.join(kinds)})" if kinds else ""),
            field="model",
        )
    if spec.get("min_accuracy") is not None and spec.get("variants") is None:
        raise Invalid("min_accuracy: only used with variants", field="min_accuracy")
    if spec.get("model") is not None and not model_exists(session, spec["model"]):
        raise Invalid(f"model: unknown model {spec['model']!r}", field="model")
    for k, variant in enumerate(spec.get("variants") or []):
        if not model_exists(session, variant):
            raise Invalid(f"variants[{k}]: unknown model {variant!r}", field="variants")
    cascade = spec.get("cascade")
    if isinstance(cascade, str):
        if session.get(Cascade, cascade) is None:
            raise Invalid(f"cascade: unknown cascade {cascade!r}", field="cascade")
    elif cascade is not None:
        check_stages(session, cascade, "cascade")
    for end in ("source", "sink"):
        ref = spec.get(end)
        if ref is not None and session.get(Device, ref) is None:
            raise Invalid(f"{end}: unknown device {ref!r}", field=end)
    stamp = audit.now()
    stored = {k: v for k, v in spec.items() if v is not None}
    stored[TOKEN_KEY] = tokens.new_token(tokens.DATA_PLANE_PREFIX)
    dep = Deployment(id=name, spec=stored, status="pending", created_at=stamp, updated_at=stamp)
    session.add(dep)
    audit.record(
        session, actor, "deployment.created", f"deployment:{name}", detail=public_spec(dep)
    )
    return dep


def public_spec(dep: Deployment) -> dict[str, Any]:
    return {k: v for k, v in dep.spec.items() if k != TOKEN_KEY}


def list_deployments(session: Session) -> list[Deployment]:
    return list(session.scalars(select(Deployment).order_by(Deployment.id)))


def get_deployment(session: Session, name: str) -> Deployment:
    dep = session.get(Deployment, name)
    if dep is None:
        raise NotFound(f"no deployment {name!r}")
    return dep


def delete_deployment(session: Session, actor: str, name: str) -> None:
    dep = get_deployment(session, name)
    session.delete(dep)
    audit.record(session, actor, "deployment.deleted", f"deployment:{name}")


def placement_settings(session: Session) -> PlacementSettings:
    """The single settings row, created with the contract's defaults when missing."""
    row = session.get(PlacementSettings, 1)
    if row is None:
        row = PlacementSettings(
            id=1,
            energy=1.0,
            carbon=0.0,
            latency=0.0,
            migration=0.0,
            horizon_h=8.0,
            max_utilization=0.8,
            hysteresis=0.05,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Two transactions (a re-plan's scenario and a read, say) both found it
            # missing; the other one's insert won and is the row.
            row = session.get(PlacementSettings, 1, populate_existing=True)
            assert row is not None
    return row


def update_placement_settings(
    session: Session, actor: str, values: dict[str, float]
) -> PlacementSettings:
    row = placement_settings(session)
    for key in PLACEMENT_FIELDS:
        if key in values:
            setattr(row, key, float(values[key]))
    audit.record(session, actor, "placement_settings.updated", "placement_settings", detail=values)
    return row


def placement_dict(row: PlacementSettings) -> dict[str, float]:
    return {key: float(getattr(row, key)) for key in PLACEMENT_FIELDS}


def placements(document: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each app's entry in a stored plan document, as the API shows it."""
    return {a.id: a.model_dump(mode="json") for a in parse_apps(document or {})}


def views(
    session: Session,
    name: str | None = None,
    placed: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Deployments with their status, why, and their entry in the plan in force (`placed`:
    that plan's `placements`, when the caller keeps them per plan version). A constant
    number of queries whatever the number of deployments: the plan documents are read
    only when something needs them, and once."""
    rows = [get_deployment(session, name)] if name is not None else list_deployments(session)
    head = (PlanVersion.version, PlanVersion.stats)
    current = session.scalar(
        select(PlanVersion).options(load_only(*head)).where(PlanVersion.in_force.is_(True))
    )
    latest = session.scalar(
        select(PlanVersion).options(load_only(*head)).order_by(PlanVersion.version.desc()).limit(1)
    )
    if placed is None:
        placed = placements(current.plan if current is not None else None)
    waiting = (latest.stats or {}).get("waiting", {}) if latest is not None else {}
    audited = _waiting_reasons(
        session, [d.id for d in rows if d.status == "waiting" and d.id not in waiting]
    )
    latest_doc: list[solver.PlanDoc | None] = []  # parsed at most once, when needed
    out = []
    for dep in rows:
        reason = None
        if dep.status == "waiting":
            reason = waiting.get(dep.id) or audited.get(dep.id) or NO_DEVICE_ALIVE
        elif dep.status == "degraded":
            # Served degraded since the plan in force (a later plan may have kept it so).
            for row in (latest, current):
                found = ((row.stats or {}).get("degraded") or {}).get(dep.id) if row else None
                reason = reason or found
        elif dep.status == "infeasible" and latest is not None:
            unplaced = (latest.stats or {}).get("unplaced") or {}
            if dep.id not in unplaced and not latest_doc:
                latest_doc.append(parse_plan(latest.plan))
            doc = None if dep.id in unplaced else latest_doc[0]
            reason = (
                unplaced.get(dep.id)
                or (doc.reason if doc is not None else None)
                or "the scenario is infeasible"
            )
        out.append(
            {
                "name": dep.id,
                "spec": public_spec(dep),
                "status": dep.status,
                "reason": reason,
                "placement": placed.get(dep.id),
                "created_at": dep.created_at,
                "updated_at": dep.updated_at,
            }
        )
    return out


NO_DEVICE_ALIVE = "no device is alive to place it on"


def _waiting_reasons(session: Session, names: list[str]) -> dict[str, str]:
    """The latest `placement.waiting` audit reason of each of `names`, in one query."""
    if not names:
        return {}
    targets = {f"deployment:{n}": n for n in names}
    entries = session.execute(
        select(AuditEntry.target, AuditEntry.reason)
        .where(AuditEntry.action == "placement.waiting", AuditEntry.target.in_(list(targets)))
        .order_by(AuditEntry.id.desc())
    )
    out: dict[str, str] = {}
    for target, reason in entries:
        out.setdefault(targets[target], reason)
    return out
