"""Liveness, readiness, metrics and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from api.deps import AuditDep, HealthDep, Operator
from api.problems import problem
from api.schemas import AuditView

router = APIRouter(tags=["health"])
audit_router = APIRouter(tags=["audit"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 whenever the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is unreachable"}})
async def readyz(health: HealthDep) -> Any:
    """200 when the database and the live state answer, else 503 naming which does not."""
    checks = await health.readiness()
    if all(checks.values()):
        return {"status": "ready", "checks": checks}
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return problem(503, f"not ready: {down} unreachable", checks=checks)


@router.get("/metrics", response_class=Response)
async def metrics(health: HealthDep) -> Response:
    """Prometheus text format."""
    return Response(health.metrics_text(), media_type="text/plain; version=0.0.4; charset=utf-8")


@audit_router.get("/audit")
async def audit_log(
    audit: AuditDep, _: Operator, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditView]:
    """The latest operator actions and placement decisions, newest first."""
    return [AuditView.model_validate(asdict(r)) for r in await audit.recent(limit)]
