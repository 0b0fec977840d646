"""Declared links (operators) beside measured ones (agents' heartbeats)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import LinksDep, Operator, RowId
from api.schemas import DeclaredLink, LinkRequest, LinksView

router = APIRouter(prefix="/links", tags=["links"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def declare_link(body: LinkRequest, links: LinksDep, actor: Operator) -> DeclaredLink:
    return DeclaredLink.model_validate(await links.declare(actor, body.model_dump()))


@router.get("")
async def list_links(links: LinksDep, _: Operator) -> LinksView:
    return LinksView.model_validate(await links.views())


@router.delete("/{link_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_link(link_id: RowId, links: LinksDep, actor: Operator) -> None:
    await links.delete(actor, link_id)
