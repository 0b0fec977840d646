"""Deployments (what operators ask to run) and the fleet-wide placement settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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
        session.add(row)
        session.flush()
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


def views(session: Session, name: str | None = None) -> list[dict[str, Any]]:
    """Deployments with their status, why, and their entry in the plan in force."""
    rows = [get_deployment(session, name)] if name is not None else list_deployments(session)
    current = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
    latest = session.scalar(select(PlanVersion).order_by(PlanVersion.version.desc()).limit(1))
    placed = {a.id: a for a in (parse_apps(current.plan) if current is not None else [])}
    waiting = (latest.stats or {}).get("waiting", {}) if latest is not None else {}
    out = []
    for dep in rows:
        reason = None
        if dep.status == "waiting":
            reason = waiting.get(dep.id) or _waiting_reason(session, dep.id)
        elif dep.status == "degraded":
            # Served degraded since the plan in force (a later plan may have kept it so).
            for row in (latest, current):
                found = ((row.stats or {}).get("degraded") or {}).get(dep.id) if row else None
                reason = reason or found
        elif dep.status == "infeasible" and latest is not None:
            unplaced = (latest.stats or {}).get("unplaced") or {}
            doc = None if dep.id in unplaced else parse_plan(latest.plan)
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
                "placement": placed[dep.id].model_dump(mode="json") if dep.id in placed else None,
                "created_at": dep.created_at,
                "updated_at": dep.updated_at,
            }
        )
    return out


def _waiting_reason(session: Session, name: str) -> str:
    entry = session.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "placement.waiting", AuditEntry.target == f"deployment:{name}")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    return entry.reason if entry is not None else "no device is alive to place it on"
