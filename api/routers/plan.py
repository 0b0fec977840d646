"""The scenario as the solver sees it, the plan in force, and what-if solves."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.carbon_schemas import PlanCarbonView
from api.deps import ControlPlaneDep, Operator, ServicesDep
from api.schemas import PlanVersionSummary, PlanView, SolveRequest, SolveResult

router = APIRouter(tags=["plan"])


@router.get("/scenario")
async def get_scenario(cp: ControlPlaneDep, _: Operator) -> dict[str, Any]:
    """The live state as a scenario-v1 document: exactly what the solver is given, so
    `continuum solve` on it replays the decision offline."""
    return await cp.plans.scenario()


@router.get("/plan")
async def get_plan(cp: ControlPlaneDep, _: Operator) -> PlanView:
    """The plan in force (the contract's plan format) and the state of its rollout."""
    return PlanView.model_validate(await cp.plans.view())


@router.get("/plan/carbon")
async def get_plan_carbon(cp: ControlPlaneDep, _: Operator) -> PlanCarbonView:
    """The plan in force's carbon, operational and embodied, per inference and per hour,
    per deployment and per device (docs/carbon.md)."""
    return PlanCarbonView.model_validate(await cp.plans.carbon())


@router.post("/plan/solve")
async def solve(body: SolveRequest, cp: ControlPlaneDep, actor: Operator) -> SolveResult:
    """Solve now. With `dry_run` a what-if: the plan is returned and nothing changes;
    otherwise the plan goes into force if it is feasible."""
    answer = await cp.plans.solve(actor, body.solver, body.dry_run)
    return SolveResult(dry_run=body.dry_run, **answer)


@router.get("/plans")
async def list_plans(
    services: ServicesDep, _: Operator, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[PlanVersionSummary]:
    """The newest plan versions, newest first: trigger, solver, status, objective, gap,
    solve time and the plan's energy, carbon and migrated megabytes."""
    return [PlanVersionSummary.model_validate(p) for p in await services.console.plans(limit)]


@router.get("/plans/{version}/scenario")
async def plan_scenario(
    services: ServicesDep, _: Operator, version: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> dict[str, Any]:
    """The scenario a version was solved from: `continuum solve` on it replays it (404
    once the version is older than the kept history)."""
    return await services.console.scenario(version)
