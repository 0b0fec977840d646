"""Links: those operators declare (durable) beside those agents measure (live state), and
those agents propose to same-site neighbours (orchestrator/link_proposals.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from orchestrator import fleet, link_proposals
from orchestrator.db.tables import Link
from orchestrator.live.links import planned
from orchestrator.services.context import Context


class LinksService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def views(self) -> dict[str, Any]:
        """{"declared": [...], "measured": [...]} as the API's LinksView, each with the
        figures the solver uses for it now (`planned`)."""
        declared = await self._ctx.run_sync(fleet.list_links)
        measured = await self._ctx.live.links()
        rows = {(k.a, k.b): declared_view(k) for k in declared}
        for key, row in rows.items():
            row["planned"] = planned(row, measured.get(key))
        return {
            "declared": list(rows.values()),
            "measured": [
                {"a": a, "b": b, "mbps": v["mbps"], "rtt_ms": v["rtt_ms"],
                 "measured_mbps": v["last_mbps"], "measured_rtt_ms": v["last_rtt_ms"],
                 "at": v.get("at"), "age_s": v["age_s"], "fresh": v["fresh"],
                 "planned": planned(rows.get((a, b)), v)}
                for (a, b), v in sorted(measured.items())
            ],
        }  # fmt: skip

    async def declare(self, actor: str, spec: dict[str, Any]) -> dict[str, Any]:
        link = await self._ctx.run_sync(fleet.declare_link, actor, spec)
        self._ctx.links_changed()
        await self._ctx.request_replan(f"link {link.a}~{link.b} declared by {actor}")
        return declared_view(link)

    async def delete(self, actor: str, link_id: int) -> None:
        await self._ctx.run_sync(fleet.delete_link, actor, link_id)
        self._ctx.links_changed()
        await self._ctx.request_replan(f"link {link_id} deleted by {actor}")

    # -- neighbour discovery -----------------------------------------------------------
    async def probe_peers(self, device_id: str) -> list[dict[str, Any]]:
        return await self._ctx.run_sync(link_proposals.probe_peers, device_id)

    async def propose(self, device_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        policy = self._ctx.settings.link_proposals
        view = await self._ctx.run_sync(_propose, device_id, spec, policy)
        if view["state"] == "accepted" and view["decided_by"] == link_proposals.POLICY_ACTOR:
            await self._declared(view, link_proposals.POLICY_ACTOR)
        return view

    async def proposals(self) -> list[dict[str, Any]]:
        return await self._ctx.run_sync(_proposals)

    async def decide(self, actor: str, proposal_id: int, *, accept: bool) -> dict[str, Any]:
        view = await self._ctx.run_sync(_decide, actor, proposal_id, accept)
        if accept:
            await self._declared(view, actor)
        return view

    async def _declared(self, view: dict[str, Any], actor: str) -> None:
        self._ctx.links_changed()
        await self._ctx.request_replan(f"link {view['a']}~{view['b']} accepted by {actor}")


def _propose(session: Session, device_id: str, spec: dict[str, Any], policy: str) -> dict[str, Any]:
    found = link_proposals.propose(session, device_id, spec, policy)
    return link_proposals.view(found)


def _proposals(session: Session) -> list[dict[str, Any]]:
    return [link_proposals.view(p) for p in link_proposals.proposals(session)]


def _decide(session: Session, actor: str, proposal_id: int, accept: bool) -> dict[str, Any]:
    return link_proposals.view(link_proposals.decide(session, actor, proposal_id, accept=accept))


def declared_view(link: Link) -> dict[str, Any]:
    return {"id": link.id, "a": link.a, "b": link.b, "mbps": link.mbps,
            "rtt_ms": link.rtt_ms, "j_per_mb": link.j_per_mb}  # fmt: skip
