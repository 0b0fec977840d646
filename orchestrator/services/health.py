"""Readiness (the database and the live state answer) and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

from orchestrator.services.context import Context

log = logging.getLogger(__name__)

# A live state that does not answer within this long counts as unreachable.
_PING_TIMEOUT_S = 5.0


class HealthService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def readiness(self) -> dict[str, bool]:
        """{"database": ok, "live_state": ok}; a check that fails is logged, not raised."""

        def database(session: Session) -> bool:
            session.execute(text("SELECT 1"))
            return True

        checks = {"database": False, "live_state": False}
        try:
            checks["database"] = await self._ctx.run_sync(database)
        except Exception:
            log.warning("readiness: database unreachable", exc_info=True)
        try:
            checks["live_state"] = await asyncio.wait_for(
                self._ctx.live.ping(), timeout=_PING_TIMEOUT_S
            )
        except Exception:
            log.warning("readiness: live state unreachable", exc_info=True)
        return checks

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of this replica's metrics."""
        return self._ctx.metrics.render()
