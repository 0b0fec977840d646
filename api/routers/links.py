"""Declared links (operators) beside measured ones (agents' heartbeats), and the links
agents propose to same-site neighbours."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import LinksDep, Operator, RowId
from api.schemas import DeclaredLink, LinkProposalView, LinkRequest, LinksView

router = APIRouter(prefix="/links", tags=["links"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def declare_link(body: LinkRequest, links: LinksDep, actor: Operator) -> DeclaredLink:
    return DeclaredLink.model_validate(await links.declare(actor, body.model_dump()))


@router.get("")
async def list_links(links: LinksDep, _: Operator) -> LinksView:
    """Declared links with the figures the solver uses for each (`planned`), and every
    remembered measurement with its age and whether it is still fresh."""
    return LinksView.model_validate(await links.views())


@router.get("/proposals")
async def list_proposals(links: LinksDep, _: Operator) -> list[LinkProposalView]:
    """Links agents measured to same-site neighbours: pending, accepted or rejected."""
    return [LinkProposalView.model_validate(p) for p in await links.proposals()]


@router.post("/proposals/{proposal_id}/accept")
async def accept_proposal(proposal_id: RowId, links: LinksDep, actor: Operator) -> LinkProposalView:
    """Declare the proposed link at its measured figures (audited); 409 unless pending."""
    return LinkProposalView.model_validate(await links.decide(actor, proposal_id, accept=True))


@router.post("/proposals/{proposal_id}/reject")
async def reject_proposal(proposal_id: RowId, links: LinksDep, actor: Operator) -> LinkProposalView:
    """Reject the proposal (audited): the pair is not proposed again."""
    return LinkProposalView.model_validate(await links.decide(actor, proposal_id, accept=False))


@router.delete("/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_link(link_id: RowId, links: LinksDep, actor: Operator) -> None:
    await links.delete(actor, link_id)
