"""Audit-log retention: a periodic sweep (`orchestrator.audit.sweep`) by age and by count
(CONTINUUM_AUDIT_RETENTION_DAYS, CONTINUUM_AUDIT_RETENTION_ROWS).

Every replica sweeps on its own timer: the deletes are idempotent, so two replicas
sweeping at once delete the same rows once. A failed sweep (the database away) is logged
and tried again at the next interval; it never stops the control plane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator import audit
from orchestrator.background import Background

log = logging.getLogger(__name__)

RunSync = Callable[..., Awaitable[Any]]


class AuditRetention:
    def __init__(
        self,
        run_sync: RunSync,
        max_age_days: float | None,
        max_rows: int | None,
        interval_s: float,
    ) -> None:
        self.run_sync = run_sync
        self.max_age_days = max_age_days
        self.max_rows = max_rows
        self.interval_s = interval_s
        self.removed = 0  # over this process's life
        self._task = Background("continuum-audit-retention")

    @property
    def enabled(self) -> bool:
        return self.max_age_days is not None or self.max_rows is not None

    def start(self) -> None:
        if self.enabled:
            self._task.start(self._loop)

    async def stop(self) -> None:
        await self._task.stop()

    async def sweep_once(self) -> int:
        removed: int = await self.run_sync(
            audit.sweep, audit.now(), self.max_age_days, self.max_rows
        )
        self.removed += removed
        if removed:
            log.info("audit retention: removed %d entries", removed)
        return removed

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:  # the database may be away; try at the next interval
                log.warning("audit retention: the sweep failed", exc_info=True)
            await asyncio.sleep(self.interval_s)
