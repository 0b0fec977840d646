"""An in-memory `Context` for the services (after Nomad's scheduler `Harness`): a real
database (SQLite file or PostgreSQL), a real live state and event bus, the real artifact
store; what a service asks of the planner and the caches is recorded, not acted on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import fleet
from orchestrator.artifacts import Artifacts
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.db import make_engine, session_factory
from orchestrator.events import EventBus
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True)
class Trigger:
    kind: str
    target: str
    reason: str
    observed_at: float
    replan: bool


@dataclass(frozen=True)
class Replan:
    reason: str
    solver: str | None
    wait: bool
    observed_at: float | None
    force: bool


class Harness:
    """Satisfies `orchestrator.services.context.Context`."""

    def __init__(self, settings: Settings, live: LiveState) -> None:
        self.settings = settings
        self.live = live
        self.events = EventBus(live)
        self.artifacts = Artifacts(settings.artifact_dir)
        self.metrics = Metrics()
        # The real Boavizta worker, started only if a test asks for a derived figure.
        self.boavizta = Boavizta(settings.boavizta_python)
        self.engine: Engine = make_engine(settings)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        # What the services asked for, in order.
        self.triggers: list[Trigger] = []
        self.replans: list[Replan] = []
        self.invalidations = 0
        self.forgotten: list[str] = []
        self.link_changes = 0

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            with self.sessions.begin() as session:
                return fn(session, *args)

        return await asyncio.to_thread(call)

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        # The same functions the process pool runs, in a thread of this process.
        return await asyncio.to_thread(fn, *args)

    async def record_trigger(
        self, kind: str, target: str, reason: str, observed_at: float, *, replan: bool = False
    ) -> None:
        self.triggers.append(Trigger(kind, target, reason, observed_at, replan))

    async def request_replan(
        self,
        reason: str,
        *,
        solver: str | None = None,
        wait: bool = False,
        observed_at: float | None = None,
        force: bool = False,
    ) -> None:
        self.replans.append(Replan(reason, solver, wait, observed_at, force))

    def invalidate_desired(self) -> None:
        self.invalidations += 1

    def forget_agent(self, device_id: str) -> None:
        self.forgotten.append(device_id)

    def links_changed(self) -> None:
        self.link_changes += 1

    # -- seeding, for the tests --------------------------------------------------------------
    async def enroll(self, name: str, **overrides: Any) -> str:
        """A device enrolled the way an agent enrolls; returns its id."""
        _, secret = await self.run_sync(fleet.create_enrollment_token, "test", 60.0, False)
        request = {
            "token": secret,
            "name": name,
            "tier": "edge",
            "gflops": 200.0,
            "memory_mb": 4096,
            "power_w": {"idle": 10.0, "busy": 40.0},
            "data_plane_url": f"http://{name}.local:9000",
            **overrides,
        }
        device, _, _ = await self.run_sync(fleet.enroll, request)
        return str(device.id)

    async def close(self) -> None:
        await asyncio.to_thread(self.boavizta.close)
        await self.events.stop()
        await self.live.close()
        self.engine.dispose()
