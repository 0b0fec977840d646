"""Deployments, and the fleet-wide placement settings."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import DeploymentsDep, Operator, ResourceId, Writer
from api.schemas import DeploymentRequest, DeploymentToken, DeploymentView, PlacementSettingsBody

router = APIRouter(tags=["deployments"])


@router.post("/deployments", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentRequest, deployments: DeploymentsDep, actor: Operator
) -> DeploymentView:
    """Ask for a model (or variants, or a cascade) to serve a source at a rate; the
    planner places it (asynchronously: watch `status` or `GET /v1/events`). The answer
    carries the deployment's data-plane token, once; `GET /v1/deployments/{name}/token`
    returns it again to an operator."""
    view = await deployments.create(actor, body.model_dump(exclude_none=True))
    return DeploymentView.model_validate(view)


@router.get("/deployments/{name}/token")
async def get_deployment_token(
    name: ResourceId, deployments: DeploymentsDep, actor: Writer
) -> DeploymentToken:
    """The data-plane token of a deployment (operators only; each read is audited): send
    it as `Authorization: Bearer` to `POST /v1/infer/{name}` on the source device's agent."""
    return DeploymentToken(name=name, data_plane_token=await deployments.token(actor, name))


@router.get("/deployments")
async def list_deployments(deployments: DeploymentsDep, _: Operator) -> list[DeploymentView]:
    return [DeploymentView.model_validate(v) for v in await deployments.views()]


@router.get("/deployments/{name}")
async def get_deployment(
    name: ResourceId, deployments: DeploymentsDep, _: Operator
) -> DeploymentView:
    """Status, current segments or stages, predicted latency, energy and carbon."""
    return DeploymentView.model_validate(await deployments.view(name))


@router.delete("/deployments/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(name: ResourceId, deployments: DeploymentsDep, actor: Operator) -> None:
    await deployments.delete(actor, name)


@router.get("/settings/placement", tags=["settings"])
async def get_placement(deployments: DeploymentsDep, _: Operator) -> PlacementSettingsBody:
    return PlacementSettingsBody.model_validate(await deployments.placement())


@router.put("/settings/placement", tags=["settings"])
async def put_placement(
    body: PlacementSettingsBody, deployments: DeploymentsDep, actor: Operator
) -> PlacementSettingsBody:
    """Objective weights (energy, carbon, latency, migration), battery horizon and the
    utilization cap, for the whole fleet. Triggers a re-solve."""
    values = await deployments.update_placement(actor, body.model_dump())
    return PlacementSettingsBody.model_validate(values)
