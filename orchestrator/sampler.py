"""The periodic task behind the console's charts: every `console_sample_interval_s` the
leading replica records one point (orchestrator/samples.py). Followers record nothing, so
several replicas write one series. It reads the live state's heartbeats on its own clock:
a heartbeat costs no more with it than without it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from orchestrator import samples
from orchestrator.background import Background
from orchestrator.calls import RunSync
from orchestrator.live.base import LiveState

log = logging.getLogger(__name__)


class Sampler:
    def __init__(
        self,
        run_sync: RunSync,
        live: LiveState,
        is_leader: Callable[[], bool],
        interval_s: float,
        retention: samples.Retention,
    ) -> None:
        self._run_sync = run_sync
        self._live = live
        self._is_leader = is_leader
        self.interval_s = interval_s
        self.retention = retention
        self._figures = samples.PlanFigures(version=None)
        self._task = Background("continuum-console-sampler")

    def start(self) -> None:
        if self.interval_s > 0:
            self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    async def tick(self) -> None:
        """Record one point now (the plan's figures are re-read only when it changed)."""
        version = await self._run_sync(samples.in_force_version)
        if version != self._figures.version:
            self._figures = await self._run_sync(samples.plan_figures)
        beats = await self._live.heartbeats()
        values = samples.sample_values(self._figures, beats)
        await self._run_sync(samples.record, values, self.retention)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if not self._is_leader():
                continue
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup costs one point, not the series
                log.exception("console sampler: recording a point failed")
