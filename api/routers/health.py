"""Liveness, readiness, metrics and the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import ControlPlaneDep, Operator
from api.problems import problem
from api.schemas import AuditView
from orchestrator import audit

router = APIRouter(tags=["health"])
audit_router = APIRouter(tags=["audit"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 whenever the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(cp: ControlPlaneDep) -> Any:
    """200 when the database and the live state answer, else 503 naming which does not."""
    checks = await cp.ready()
    if all(checks.values()):
        return {"status": "ready", "checks": checks}
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return problem(503, f"not ready: {down} unreachable", checks=checks)


@router.get("/metrics", response_class=Response)
async def metrics(cp: ControlPlaneDep) -> Response:
    """Prometheus text format."""
    return Response(cp.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@audit_router.get("/audit")
async def audit_log(
    cp: ControlPlaneDep, _: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditView]:
    """The latest operator actions and placement decisions, newest first."""
    rows = await cp.run_sync(audit.recent, limit)
    return [
        AuditView(
            id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target,
            reason=r.reason, detail=r.detail,
        )
        for r in rows
    ]  # fmt: skip
