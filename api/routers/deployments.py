"""Deployments, and the fleet-wide placement settings."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import ControlPlaneDep, Operator
from api.schemas import DeploymentRequest, DeploymentToken, DeploymentView, PlacementSettingsBody
from orchestrator import deployments

router = APIRouter(tags=["deployments"])


@router.post("/deployments", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentRequest, cp: ControlPlaneDep, actor: Operator
) -> DeploymentView:
    """Ask for a model (or variants, or a cascade) to serve a source at a rate; the
    planner places it (asynchronously: watch `status` or `GET /v1/events`). The answer
    carries the deployment's data-plane token, once; `GET /v1/deployments/{name}/token`
    returns it again to an operator."""
    spec = body.model_dump(exclude_none=True)
    dep = await cp.create_deployment(actor, spec)
    (view,) = await cp.run_sync(deployments.views, body.name)
    return DeploymentView.model_validate(
        {**view, "data_plane_token": dep.spec[deployments.TOKEN_KEY]}
    )


@router.get("/deployments/{name}/token")
async def get_deployment_token(name: str, cp: ControlPlaneDep, actor: Operator) -> DeploymentToken:
    """The data-plane token of a deployment (operators only; each read is audited): send
    it as `Authorization: Bearer` to `POST /v1/infer/{name}` on the source device's agent."""
    return DeploymentToken(name=name, data_plane_token=await cp.deployment_token(actor, name))


@router.get("/deployments")
async def list_deployments(cp: ControlPlaneDep, _: Operator) -> list[DeploymentView]:
    return [DeploymentView.model_validate(v) for v in await cp.run_sync(deployments.views)]


@router.get("/deployments/{name}")
async def get_deployment(name: str, cp: ControlPlaneDep, _: Operator) -> DeploymentView:
    """Status, current segments or stages, predicted latency, energy and carbon."""
    (view,) = await cp.run_sync(deployments.views, name)
    return DeploymentView.model_validate(view)


@router.delete("/deployments/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(name: str, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.delete_deployment(actor, name)


@router.get("/settings/placement", tags=["settings"])
async def get_placement(cp: ControlPlaneDep, _: Operator) -> PlacementSettingsBody:
    row = await cp.run_sync(deployments.placement_settings)
    return PlacementSettingsBody.model_validate(deployments.placement_dict(row))


@router.put("/settings/placement", tags=["settings"])
async def put_placement(
    body: PlacementSettingsBody, cp: ControlPlaneDep, actor: Operator
) -> PlacementSettingsBody:
    """Objective weights (energy, carbon, latency, migration), battery horizon and the
    utilization cap, for the whole fleet. Triggers a re-solve."""
    values = await cp.update_placement(actor, body.model_dump())
    return PlacementSettingsBody.model_validate(values)
