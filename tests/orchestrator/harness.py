"""An in-memory host for the planner and the reconcile loop's gateway, in the manner of
Nomad's scheduler `Harness`: the real planner, desired-state owner and gateway run against
SQLite in a temporary directory and the in-process live state, solves run in this
process, and every plan version announced and every revision published is recorded.
No HTTP, no process pool, no agents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from orchestrator import catalog, deployments, fleet, model_jobs
from orchestrator.artifacts import Artifacts
from orchestrator.db import make_engine, migrate, session_factory
from orchestrator.desired.states import DesiredStates, StagedStates
from orchestrator.live.base import LiveState
from orchestrator.live.memory import MemoryLiveState
from orchestrator.metrics import Metrics
from orchestrator.planner import Planner
from orchestrator.reconcile_gateway import ReconcileGateway
from orchestrator.settings import Settings

T = TypeVar("T")
ACTOR = "operator:test"


@dataclass
class Rollout:
    """One `start_rollout` the planner published."""

    plan_version: int
    revision: int
    devices: list[str]
    staged: StagedStates | None


@dataclass
class Trigger:
    kind: str
    target: str
    reason: str


class RecordingDesired:
    """The desired-state owner, with a record of the rollouts the planner started."""

    def __init__(self, owner: DesiredStates) -> None:
        self.owner = owner
        self.rollouts: list[Rollout] = []

    async def start_rollout(
        self, plan_version: int, revision: int, devices: list[str], staged: StagedStates | None
    ) -> None:
        self.rollouts.append(Rollout(plan_version, revision, list(devices), staged))
        await self.owner.start_rollout(plan_version, revision, devices, staged)


@dataclass
class Harness:
    settings: Settings
    sessions: sessionmaker[Session]
    live: LiveState
    artifacts: Artifacts
    metrics: Metrics
    owner: DesiredStates = field(init=False)
    desired: RecordingDesired = field(init=False)
    planner: Planner = field(init=False)
    gateway: ReconcileGateway = field(init=False)
    announced: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    agent_tokens: dict[str, str] = field(default_factory=dict)  # device -> its agent token

    def __post_init__(self) -> None:
        self.owner = DesiredStates(
            self.run_sync,
            self.live,
            self.publish,
            public_url=self.settings.public_url or "",
            long_poll_max_s=self.settings.long_poll_max_s,
            on_delivery=lambda device, revision, at: self.deliveries.append((device, revision)),
            settle_heap=lambda: None,
        )
        self.desired = RecordingDesired(self.owner)
        self.planner = Planner(self)
        self.gateway = ReconcileGateway(
            self.live,
            self.run_sync,
            self.owner,
            record_trigger=self.record_trigger,
            request_replan=self.planner.request,
            publish=self.publish,
        )

    # -- the planner's Host ----------------------------------------------------------------
    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        def call() -> T:
            with self.sessions.begin() as session:
                return fn(session, *args)

        return await asyncio.to_thread(call)

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)  # this process: the harness has no pool

    async def announce(self, summary: dict[str, Any]) -> None:
        self.announced.append(summary)

    def settle_heap(self) -> None:
        pass  # no heap policy in a test

    # -- what the gateway and the owner publish ------------------------------------------
    async def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        await self.owner.on_event(kind, data)  # as the event bus hands it back

    async def record_trigger(
        self, kind: str, target: str, reason: str, observed_at: float, *, replan: bool = False
    ) -> None:
        self.triggers.append(Trigger(kind, target, reason))
        if replan:
            await self.planner.request(reason, observed_at=observed_at)

    # -- a fleet ---------------------------------------------------------------------------
    async def enroll(self, name: str, **spec: Any) -> str:
        _, secret = await self.run_sync(fleet.create_enrollment_token, ACTOR, 600.0, True)
        request = {
            "token": secret,
            "name": name,
            "tier": "edge",
            "gflops": 200.0,
            "memory_mb": 4096.0,
            "power_w": {"idle": 10.0, "busy": 40.0},
            "battery": None,
            "labels": {},
            "data_plane_url": f"http://{name}.test:9000",
            "grid_gco2_per_kwh": 0.0,
            "embodied_kgco2e": 0.0,
            "lifetime_h": 35040.0,
            "emulated": False,
            **spec,
        }
        # Enrolling again is the device's own agent: it shows its current token.
        device, secret, _ = await self.run_sync(fleet.enroll, request, self.agent_tokens.get(name))
        self.agent_tokens[name] = secret
        await self.beat(device.id)
        return str(device.id)

    async def beat(self, device_id: str, **beat: Any) -> None:
        ttl = self.settings.heartbeat_interval_s * self.settings.lost_after_intervals
        await self.live.put_heartbeat(device_id, {"at": 0.0, **beat}, ttl)

    async def add_model(self, model_id: str, onnx_bytes: bytes) -> None:
        path = self.settings.data_dir / f"{model_id}.upload"
        path.write_bytes(onnx_bytes)
        analysis = await self.in_pool(model_jobs.analyse_file, str(path), None)
        sha, size = self.artifacts.adopt(path)
        await self.run_sync(catalog.register_model, ACTOR, model_id, sha, size, analysis)

    async def deploy(self, name: str, **spec: Any) -> None:
        await self.run_sync(deployments.create_deployment, ACTOR, {"name": name, **spec})


async def open_harness(tmp_path: Path, live: LiveState | None = None) -> Harness:
    """The harness on SQLite; its live state in-process unless `live` is given."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=None,
        solver="heuristic",
        public_url="http://cp.test",
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate.upgrade, settings.sqlalchemy_url)
    engine = make_engine(settings)
    harness = Harness(
        settings,
        session_factory(engine),
        live if live is not None else MemoryLiveState(),
        Artifacts(settings.artifact_dir),
        Metrics(),
    )
    await harness.owner.load()
    return harness


async def close_harness(harness: Harness) -> None:
    await harness.planner.stop()
    await harness.owner.stop()
    await harness.live.close()
    bind = harness.sessions.kw["bind"]
    bind.dispose()


CAMERA = {
    "tier": "device",
    "gflops": 5.0,
    "memory_mb": 256.0,
    "power_w": {"idle": 1.0, "busy": 4.0},
    "battery": {"capacity_wh": 60.0, "level_pct": 80.0, "min_pct": 20.0},
}


async def camera_and_edge(harness: Harness, cnn: bytes) -> None:
    """cam-1 and edge-1, alive, a declared link between them, and the small CNN."""
    await harness.enroll("cam-1", **CAMERA)
    await harness.enroll("edge-1")
    await harness.beat("cam-1", battery_pct=80.0)
    link = {"a": "cam-1", "b": "edge-1", "mbps": 50.0, "rtt_ms": 4.0, "j_per_mb": 0.5}
    await harness.run_sync(fleet.declare_link, ACTOR, link)
    await harness.add_model("cnn", cnn)
