"""Reads of the audit log: every operator action and placement decision, with its reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator import audit
from orchestrator.services.context import Context


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    detail: dict[str, Any]


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def recent(self, limit: int = 100) -> list[AuditRecord]:
        """The latest `limit` entries, newest first."""
        rows = await self._ctx.run_sync(audit.recent, limit)
        return [
            AuditRecord(
                id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target,
                reason=r.reason, detail=r.detail,
            )
            for r in rows
        ]  # fmt: skip
