"""What agents call: enroll, heartbeat, and the desired-state long poll."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from api.deps import AgentAuth, ControlPlaneDep, Credentials, LinksDep, enroll_rate
from api.types import MAX_INT
from api.wire import (
    DECLARABLE_FIGURES,
    DesiredState,
    EnrollRequest,
    EnrollResponse,
    Heartbeat,
    HeartbeatAck,
    LinkProposalAck,
    LinkProposalRequest,
    ProbePeers,
)

router = APIRouter(prefix="/agents", tags=["agents"])


@router.post("/enroll", status_code=status.HTTP_201_CREATED, dependencies=[Depends(enroll_rate)])
async def enroll(
    body: EnrollRequest, cp: ControlPlaneDep, credentials: Credentials
) -> EnrollResponse:
    """Register a device with an enrollment token; returns its agent token (shown once).
    Enrolling again under an existing name rotates the token, and needs that device's
    current agent token as `Authorization: Bearer` (or an operator's
    `POST /v1/devices/{id}/rekey` first): otherwise 409."""
    request = body.model_dump()
    # Which carbon figures the agent's operator set (the others are defaults): a declared
    # figure wins over Boavizta's derived one.
    request["declared"] = sorted(body.model_fields_set & set(DECLARABLE_FIGURES))
    agent_token = credentials.credentials if credentials is not None else None
    return EnrollResponse(**await cp.agents.enroll(request, agent_token))


@router.post("/{device_id}/heartbeat")
async def heartbeat(body: Heartbeat, device_id: AgentAuth, cp: ControlPlaneDep) -> HeartbeatAck:
    """Battery, utilization, free memory, measured links and partition readiness. Goes
    to the live state only (never SQL)."""
    ack = await cp.agents.heartbeat(device_id, body.model_dump())
    return HeartbeatAck(
        desired_version=ack.desired_version,
        interval_s=ack.interval_s,
        live_version=ack.live_version,
    )


@router.get("/{device_id}/desired-state")
async def desired_state(
    device_id: AgentAuth,
    cp: ControlPlaneDep,
    after_version: Annotated[int, Query(ge=-1, le=MAX_INT)] = -1,
    wait_s: Annotated[float, Query(ge=0, le=3600, allow_inf_nan=False)] = 0.0,
) -> DesiredState:
    """Long poll: answers at once when this agent's desired state changed since revision
    `after_version` (or the current rollout counts on it), else waits up to `wait_s`
    (capped by the server) for a change and answers with what is current then (on a
    timeout the same content, maybe at a newer version: poll again)."""
    state = await cp.agents.desired(device_id, after_version, wait_s)
    return DesiredState.model_validate(state)


@router.get("/{device_id}/peers")
async def probe_peers(device_id: AgentAuth, links: LinksDep) -> ProbePeers:
    """The devices this agent should probe: the other ends of its declared links (also
    those no plan sends over, at a low rate) and its same-site neighbours (`site` label),
    each with the token its `/v1/probe` accepts."""
    return ProbePeers.model_validate({"peers": await links.probe_peers(device_id)})


@router.post("/{device_id}/link-proposals")
async def propose_link(
    body: LinkProposalRequest, device_id: AgentAuth, links: LinksDep
) -> LinkProposalAck:
    """Propose a link to a same-site neighbour at the figures measured (422 naming `peer`
    when it is no such neighbour, 409 when the link is declared already). Kept for an
    operator, or declared at once under `link_proposals: accept-same-site`."""
    view = await links.propose(device_id, body.model_dump())
    return LinkProposalAck(id=view["id"], state=view["state"])
