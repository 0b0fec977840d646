"""Links: those operators declare (durable) beside those agents measure (live state)."""

from __future__ import annotations

from typing import Any

from orchestrator import fleet
from orchestrator.db.tables import Link
from orchestrator.services.context import Context


class LinksService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def views(self) -> dict[str, Any]:
        """{"declared": [...], "measured": [...]} as the API's LinksView."""
        declared = await self._ctx.run_sync(fleet.list_links)
        measured = await self._ctx.live.links()
        return {
            "declared": [declared_view(k) for k in declared],
            "measured": [
                {"a": a, "b": b, "mbps": v["mbps"], "rtt_ms": v["rtt_ms"], "at": v.get("at")}
                for (a, b), v in sorted(measured.items())
            ],
        }

    async def declare(self, actor: str, spec: dict[str, Any]) -> dict[str, Any]:
        link = await self._ctx.run_sync(fleet.declare_link, actor, spec)
        self._ctx.links_changed()
        await self._ctx.request_replan(f"link {link.a}~{link.b} declared by {actor}")
        return declared_view(link)

    async def delete(self, actor: str, link_id: int) -> None:
        await self._ctx.run_sync(fleet.delete_link, actor, link_id)
        self._ctx.links_changed()
        await self._ctx.request_replan(f"link {link_id} deleted by {actor}")


def declared_view(link: Link) -> dict[str, Any]:
    return {"id": link.id, "a": link.a, "b": link.b, "mbps": link.mbps,
            "rtt_ms": link.rtt_ms, "j_per_mb": link.j_per_mb}  # fmt: skip
