"""Annotated dependencies: the services the routes call, operator auth and agent auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.types import MAX_INT
from api.wire import DEVICE_ID_PATTERN
from orchestrator import tokens
from orchestrator.control_plane import ControlPlane
from orchestrator.errors import Forbidden, TooManyRequests, Unauthorized
from orchestrator.ratelimit import RateLimited
from orchestrator.services.artifacts import ArtifactsService
from orchestrator.services.audit import AuditService
from orchestrator.services.deployments import DeploymentsService
from orchestrator.services.devices import DevicesService
from orchestrator.services.events import EventsService
from orchestrator.services.health import HealthService
from orchestrator.services.links import LinksService
from orchestrator.services.models import CascadesService, ModelsService
from orchestrator.services.registry import Services
from orchestrator.services.tokens import TokensService

_bearer = HTTPBearer(auto_error=False, description="An operator token, or an agent's token")


def get_control_plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control_plane
    return cp


ControlPlaneDep = Annotated[ControlPlane, Depends(get_control_plane)]


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _devices(services: ServicesDep) -> DevicesService:
    return services.devices


def _links(services: ServicesDep) -> LinksService:
    return services.links


def _models(services: ServicesDep) -> ModelsService:
    return services.models


def _cascades(services: ServicesDep) -> CascadesService:
    return services.cascades


def _deployments(services: ServicesDep) -> DeploymentsService:
    return services.deployments


def _tokens(services: ServicesDep) -> TokensService:
    return services.tokens


def _artifacts(services: ServicesDep) -> ArtifactsService:
    return services.artifacts


def _audit(services: ServicesDep) -> AuditService:
    return services.audit


def _events(services: ServicesDep) -> EventsService:
    return services.events


def _health(services: ServicesDep) -> HealthService:
    return services.health


DevicesDep = Annotated[DevicesService, Depends(_devices)]
LinksDep = Annotated[LinksService, Depends(_links)]
ModelsDep = Annotated[ModelsService, Depends(_models)]
CascadesDep = Annotated[CascadesService, Depends(_cascades)]
DeploymentsDep = Annotated[DeploymentsService, Depends(_deployments)]
TokensDep = Annotated[TokensService, Depends(_tokens)]
ArtifactsDep = Annotated[ArtifactsService, Depends(_artifacts)]
AuditDep = Annotated[AuditService, Depends(_audit)]
EventsDep = Annotated[EventsService, Depends(_events)]
HealthDep = Annotated[HealthService, Depends(_health)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


# Methods that change nothing: a viewer may call them.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _role(
    cp: ControlPlane, credentials: HTTPAuthorizationCredentials | None
) -> tuple[str, str]:
    found = await cp.agents.operator_role(_token(credentials))
    if found is None:
        raise Unauthorized("unknown or revoked operator token")
    return found


async def operator(request: Request, cp: ControlPlaneDep, credentials: Credentials) -> str:
    """The acting operator ("operator:<key name>"). A viewer's token reads only: any other
    method is refused here, so no write route can forget the check."""
    actor, role = await _role(cp, credentials)
    if request.method not in _READS and not tokens.allows(role, "operator"):
        raise Forbidden(
            f"{actor} has the {role} role, which reads only: ask an admin for an operator token"
        )
    return actor


Operator = Annotated[str, Depends(operator)]


async def admin(cp: ControlPlaneDep, credentials: Credentials) -> str:
    """An operator with the admin role (managing operator keys)."""
    actor, role = await _role(cp, credentials)
    if not tokens.allows(role, "admin"):
        raise Forbidden(f"{actor} has the {role} role; managing operator keys needs admin")
    return actor


Admin = Annotated[str, Depends(admin)]


async def writer(cp: ControlPlaneDep, credentials: Credentials) -> str:
    """An operator or admin even on a read: for reads that reveal a secret."""
    actor, role = await _role(cp, credentials)
    if not tokens.allows(role, "operator"):
        raise Forbidden(f"{actor} has the {role} role, which may not read secrets")
    return actor


Writer = Annotated[str, Depends(writer)]
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
# Models, cascades and deployments share the ids' alphabet: anything else (a NUL, a
# surrogate) is a 422 before it reaches the database.
ResourceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]
RowId = Annotated[int, Path(ge=1, le=MAX_INT)]


async def agent(cp: ControlPlaneDep, credentials: Credentials, device_id: DeviceId) -> str:
    """The device the path names, when the token is that device's agent token."""
    owner = await cp.agents.agent_for(_token(credentials))
    if owner is None:
        raise Unauthorized("unknown agent token: enroll again")
    if owner != device_id:
        raise Forbidden(f"this agent token belongs to device {owner!r}, not {device_id!r}")
    return device_id


AgentAuth = Annotated[str, Depends(agent)]


async def reader(cp: ControlPlaneDep, credentials: Credentials) -> str:
    """An operator or any enrolled agent (artifact downloads)."""
    token = _token(credentials)
    device_id = await cp.agents.agent_for(token)
    if device_id is not None:
        return f"agent:{device_id}"
    actor = await cp.agents.operator(token)
    if actor is None:
        raise Unauthorized("unknown token: an operator or agent token is required")
    return actor


Reader = Annotated[str, Depends(reader)]


def enroll_rate(request: Request, cp: ControlPlaneDep) -> None:
    """Count an enrollment attempt against its source address and all sources (429 over
    CONTINUUM_ENROLL_RATE_*); counted whatever the outcome, so guessing tokens is slow."""
    source = request.client.host if request.client is not None else "unknown"
    try:
        cp.enroll_limit.take(source)
    except RateLimited as exc:
        who = f"from {source}" if exc.scope == "source" else "from all sources together"
        raise TooManyRequests(
            f"too many enrollment attempts {who}; retry after {exc.retry_after_s:.1f} s",
            retry_after_s=exc.retry_after_s,
        ) from None
