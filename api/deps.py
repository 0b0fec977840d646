"""Annotated dependencies: the control plane, operator auth and agent auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.wire import DEVICE_ID_PATTERN
from orchestrator.control_plane import ControlPlane
from orchestrator.errors import Forbidden, Unauthorized

_bearer = HTTPBearer(auto_error=False, description="An operator token, or an agent's token")


def get_control_plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control_plane
    return cp


ControlPlaneDep = Annotated[ControlPlane, Depends(get_control_plane)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    return credentials.credentials


async def operator(cp: ControlPlaneDep, credentials: Credentials) -> str:
    """The acting operator ("operator:<key name>")."""
    actor = await cp.agents.operator(_token(credentials))
    if actor is None:
        raise Unauthorized("unknown or revoked operator token")
    return actor


Operator = Annotated[str, Depends(operator)]
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]


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
