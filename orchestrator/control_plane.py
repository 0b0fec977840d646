"""The control plane's wiring: its state stores, the desired-state owner, the planner, the
reconcile loop and the per-resource services the routes call, built and started here.

SQL work runs in worker threads (`run_sync`), CPU-heavy work (solving, ONNX analysis,
partition extraction, quantization) in a process pool (`in_pool`), and the heartbeat path
touches neither (`orchestrator.services.agents`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

# The models section below names the registry's pool jobs `work` (they were
# `orchestrator.work`); those routes move to `orchestrator.services`.
from orchestrator import audit, catalog, deployments, fleet
from orchestrator import model_jobs as work
from orchestrator.artifacts import Artifacts
from orchestrator.db.engine import make_engine, session_factory
from orchestrator.db.tables import Device
from orchestrator.desired.states import DesiredStates
from orchestrator.errors import Conflict, Invalid
from orchestrator.events import EventBus
from orchestrator.heap import HeapPolicy
from orchestrator.live import open_live_state
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.planner import Planner
from orchestrator.reconcile import LoopConfig, Reconciler
from orchestrator.reconcile_gateway import ReconcileGateway
from orchestrator.services.agents import Agents
from orchestrator.services.plans import Plans
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class ControlPlane:
    def __init__(
        self,
        settings: Settings,
        *,
        live: LiveState | None = None,
        executor: Executor | None = None,
        migrate: bool | None = None,
    ) -> None:
        self.settings = settings
        self._given_executor = executor
        self._pool: ProcessPoolExecutor | None = None
        # Embedded mode migrates at start; a server on PostgreSQL is migrated by
        # `continuum db upgrade` (one deliberate step per release, not one per replica).
        self._migrate = settings.embedded if migrate is None else migrate
        self.metrics = Metrics()
        self.artifacts = Artifacts(settings.artifact_dir)
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        self.live: LiveState = live if live is not None else open_live_state(settings)
        self.events = EventBus(self.live)
        self.metrics.events_dropped.set_function(lambda: self.events.dropped)
        self.heap = HeapPolicy(settings.gc_freeze)
        self.desired = DesiredStates(
            self.run_sync,
            self.live,
            self.events.publish,
            public_url=settings.public_url or "",
            long_poll_max_s=settings.long_poll_max_s,
            on_delivery=self._delivered,
            settle_heap=self.heap.settle,
        )
        self.planner = Planner(self)
        self.gateway = ReconcileGateway(
            self.live,
            self.run_sync,
            self.desired,
            record_trigger=self.record_trigger,
            request_replan=self.planner.request,
            publish=self.events.publish,
        )
        self.reconciler = Reconciler(self.gateway, self._loop_config(), self.metrics)
        self.agents = Agents(
            settings,
            self.live,
            self.run_sync,
            self.events.publish,
            self.metrics,
            self.desired,
            poke=self.reconciler.poke,
        )
        self.plans = Plans(self.planner, self.desired, self.live, self.run_sync)

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        if settings.embedded:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self._migrate:
            from orchestrator.db.migrate import upgrade

            await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        self.engine = make_engine(settings)
        self.sessions = session_factory(self.engine)
        await self.agents.load()
        await self.desired.load()
        self.events.listen(self._on_event)
        await self.events.start()
        self.reconciler.start()
        self.heap.start()

    def _loop_config(self) -> LoopConfig:
        s = self.settings
        return LoopConfig(
            interval_s=s.reconcile_interval_s,
            heartbeat_interval_s=s.heartbeat_interval_s,
            lost_after_intervals=s.lost_after_intervals,
            leader_ttl_s=s.leader_ttl_s,
            rollout_timeout_s=s.rollout_timeout_s,
            link_change_fraction=s.link_change_fraction,
            link_alpha=s.link_smoothing,
            latency_drift_fraction=s.latency_drift_fraction,
        )

    async def stop(self) -> None:
        await self.heap.stop()
        await self.reconciler.stop()
        await self.desired.stop()
        await self.planner.stop()
        await self.events.stop()
        await self.live.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None

    def _executor(self) -> Executor:
        if self._given_executor is not None:
            return self._given_executor
        if self._pool is None:
            # spawn, not fork: the server process has threads (and maybe an event loop in
            # one), which a forked child would inherit in an undefined state.
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.solver_workers,
                mp_context=multiprocessing.get_context("spawn"),
            )
        return self._pool

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(session, *args) in a worker thread, in one transaction."""
        sessions = self.sessions
        if sessions is None:
            raise RuntimeError("the control plane is not started")

        def call() -> T:
            with sessions.begin() as session:
                return fn(session, *args)

        return await asyncio.to_thread(call)

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), fn, *args)

    # -- what the planner publishes (`orchestrator.planner.Host`) --------------------------
    async def announce(self, summary: dict[str, Any]) -> None:
        await self.events.publish("placement", summary)

    def settle_heap(self) -> None:
        self.heap.settle()

    # -- what other replicas decided --------------------------------------------------------
    def _delivered(self, device_id: str, revision: int, at: float) -> None:
        self.gateway.on_delivery(device_id, revision, at)

    async def _on_event(self, message: dict[str, Any]) -> None:
        """Keep this replica's caches in step with what any replica decided."""
        data = message.get("data") or {}
        kind = str(message.get("type"))
        if kind == "delivery":
            self.gateway.on_delivery(str(data["device_id"]), int(data["revision"]), data["at"])
            return
        await self.desired.on_event(kind, data)
        if kind == "device":
            self.gateway.devices_changed()
        if kind == "device" and data.get("change") == "deleted":
            self.agents.forget(str(data.get("device_id")))

    async def ready(self) -> dict[str, bool]:
        def database(session: Session) -> bool:
            session.execute(text("SELECT 1"))
            return True

        checks = {"database": False, "live_state": False}
        try:
            checks["database"] = await self.run_sync(database)
        except Exception:
            log.warning("readiness: database unreachable", exc_info=True)
        try:
            checks["live_state"] = await asyncio.wait_for(self.live.ping(), timeout=5.0)
        except Exception:
            log.warning("readiness: live state unreachable", exc_info=True)
        return checks

    # -- triggers (shared by the API and the reconcile loop) -------------------------------
    async def record_trigger(
        self, kind: str, target: str, reason: str, observed_at: float, *, replan: bool = False
    ) -> None:
        """A trigger, with its reason, in the audit log and on /v1/events; with `replan`,
        a planner request measured from `observed_at`."""
        await self.run_sync(
            audit.record, "loop", f"trigger.{kind}", target, reason, {"observed_at": observed_at}
        )
        await self.events.publish(
            "trigger",
            {"kind": kind, "target": target, "reason": reason, "observed_at": observed_at},
        )
        if replan:
            await self.planner.request(reason, observed_at=observed_at)

    def invalidate_desired(self) -> None:
        self.desired.invalidate()

    # -- devices ---------------------------------------------------------------------------
    async def device_views(self) -> list[dict[str, Any]]:
        devices = await self.run_sync(fleet.list_devices)
        beats = await self.live.heartbeats()
        return [device_view(d, beats.get(d.id)) for d in devices]

    async def device_view(self, device_id: str) -> dict[str, Any]:
        device = await self.run_sync(fleet.get_device, device_id)
        return device_view(device, await self.live.heartbeat(device_id))

    async def update_device(self, actor: str, device_id: str, changes: dict[str, Any]) -> None:
        await self.run_sync(fleet.update_device, actor, device_id, changes)
        await self.events.publish("device", {"device_id": device_id, "change": "updated"})
        await self.record_trigger(
            "device-changed",
            device_id,
            f"device {device_id} updated by {actor}",
            time.time(),
            replan=True,
        )

    async def set_device_state(self, actor: str, device_id: str, state: str) -> None:
        await self.run_sync(fleet.set_device_state, actor, device_id, state)
        await self.events.publish("device", {"device_id": device_id, "change": state})
        await self.record_trigger(
            f"device-{state}",
            device_id,
            f"device {device_id} set {state} by {actor}",
            time.time(),
            replan=True,
        )

    async def delete_device(self, actor: str, device_id: str) -> None:
        await self.run_sync(fleet.delete_device, actor, device_id)
        await self.live.forget(device_id)
        self.invalidate_desired()
        await self.events.publish("device", {"device_id": device_id, "change": "deleted"})
        await self._on_event(
            {"type": "device", "data": {"device_id": device_id, "change": "deleted"}}
        )
        await self.planner.request(f"device {device_id} deleted by {actor}")

    async def link_views(self) -> dict[str, Any]:
        declared = await self.run_sync(fleet.list_links)
        measured = await self.live.links()
        return {
            "declared": [
                {
                    "id": k.id,
                    "a": k.a,
                    "b": k.b,
                    "mbps": k.mbps,
                    "rtt_ms": k.rtt_ms,
                    "j_per_mb": k.j_per_mb,
                }
                for k in declared
            ],
            "measured": [
                {"a": a, "b": b, "mbps": v["mbps"], "rtt_ms": v["rtt_ms"], "at": v.get("at")}
                for (a, b), v in sorted(measured.items())
            ],
        }

    async def declare_link(self, actor: str, spec: dict[str, Any]) -> dict[str, Any]:
        link = await self.run_sync(fleet.declare_link, actor, spec)
        self.gateway.links_changed()
        await self.planner.request(f"link {link.a}~{link.b} declared by {actor}")
        return {"id": link.id, "a": link.a, "b": link.b, "mbps": link.mbps,
                "rtt_ms": link.rtt_ms, "j_per_mb": link.j_per_mb}  # fmt: skip

    async def delete_link(self, actor: str, link_id: int) -> None:
        await self.run_sync(fleet.delete_link, actor, link_id)
        self.gateway.links_changed()
        await self.planner.request(f"link {link_id} deleted by {actor}")

    # -- models ----------------------------------------------------------------------------
    async def add_model(
        self,
        actor: str,
        model_id: str,
        upload: Path,
        accuracy: float | None,
        input_shapes: dict[str, list[int]] | None,
    ) -> Any:
        """Analyse an uploaded file, then store it and its rows; on any failure nothing
        is stored and the upload is removed."""
        try:
            catalog.check_id(model_id, "id")
            if await self.run_sync(catalog.model_exists, model_id):
                raise Conflict(f"a model {model_id!r} already exists; choose another id")
            analysis = await self.in_pool(work.analyse_file, str(upload), input_shapes)
            sha, size = await asyncio.to_thread(self.artifacts.adopt, upload)
        finally:
            upload.unlink(missing_ok=True)
        return await self.run_sync(
            _register, actor, model_id, sha, size, analysis, accuracy, input_shapes, None, None, {}
        )

    async def add_int8_variant(
        self, actor: str, model_id: str, variant_id: str, accuracy: float | None
    ) -> Any:
        catalog.check_id(variant_id, "id")
        parent = await self.run_sync(catalog.get_model, model_id)
        if await self.run_sync(catalog.model_exists, variant_id):
            from orchestrator.errors import Conflict

            raise Conflict(f"a model {variant_id!r} already exists; choose another id")
        shapes = parent.detail.get("input_shapes")
        made = await self.in_pool(
            work.quantize_to_store,
            str(self.artifacts.path(parent.artifact_sha256)),
            shapes,
            str(self.artifacts.root),
        )
        return await self.run_sync(
            _register, actor, variant_id, made["sha256"], made["size"], made["analysis"],
            accuracy, shapes, model_id, "int8", made["detail"],
        )  # fmt: skip

    async def add_exit_head(
        self,
        actor: str,
        model_id: str,
        after: str,
        upload: Path,
        prob: float | None,
        threshold: float,
    ) -> Any:
        try:
            model = await self.run_sync(catalog.get_model, model_id)
            catalog.check_exit_block(model, after)
            # Checked against the block before anything is stored: a head whose input does
            # not fit the block's output is refused with both shapes named.
            cost = await self.in_pool(
                work.check_exit_head,
                str(self.artifacts.path(model.artifact_sha256)),
                model.detail.get("input_shapes"),
                after,
                str(upload),
            )
            sha, size = await asyncio.to_thread(self.artifacts.adopt, upload)
        finally:
            upload.unlink(missing_ok=True)
        head = await self.run_sync(
            catalog.add_exit_head, actor, model_id, after, sha, size,
            cost["gflops"], cost["params_mb"], prob, threshold,
        )  # fmt: skip
        await self.planner.request(f"exit head after {after} added to {model_id} by {actor}")
        return head

    async def calibrate(self, actor: str, model_id: str, probs: dict[str, float]) -> Any:
        def apply(session: Session) -> Any:
            heads = catalog.exit_heads(session, model_id)
            unknown = sorted(set(probs) - {h.after for h in heads})
            if unknown:
                raise Invalid(
                    f"probs: model {model_id!r} has no exit head after {unknown[0]!r}",
                    field="probs",
                )
            return catalog.set_exit_probs(session, actor, model_id, probs, {"probs": probs})

        heads = await self.run_sync(apply)
        await self.planner.request(f"exit probabilities of {model_id} calibrated by {actor}")
        return heads

    # -- deployments and placement ------------------------------------------------------
    async def create_deployment(self, actor: str, spec: dict[str, Any]) -> Any:
        dep = await self.run_sync(deployments.create_deployment, actor, spec)
        await self.events.publish("deployment", {"deployment": dep.id, "change": "created"})
        await self.record_trigger(
            "deployment-created",
            f"deployment:{dep.id}",
            f"deployment {dep.id} created by {actor}",
            time.time(),
            replan=True,
        )
        return dep

    async def delete_deployment(self, actor: str, name: str) -> None:
        await self.run_sync(deployments.delete_deployment, actor, name)
        self.invalidate_desired()
        await self.events.publish("deployment", {"deployment": name, "change": "deleted"})
        await self.record_trigger(
            "deployment-deleted",
            f"deployment:{name}",
            f"deployment {name} deleted by {actor}",
            time.time(),
            replan=True,
        )

    async def deployment_token(self, actor: str, name: str) -> str:
        """The deployment's data-plane token (operators only; audited)."""

        def read(session: Session) -> str:
            dep = deployments.get_deployment(session, name)
            audit.record(session, actor, "deployment.token_read", f"deployment:{name}")
            return str(dep.spec[deployments.TOKEN_KEY])

        return await self.run_sync(read)

    async def update_placement(self, actor: str, values: dict[str, float]) -> dict[str, float]:
        row = await self.run_sync(deployments.update_placement_settings, actor, values)
        await self.planner.request(f"placement settings changed by {actor}")
        return deployments.placement_dict(row)


def _register(
    session: Session,
    actor: str,
    model_id: str,
    sha: str,
    size: int,
    analysis: dict[str, Any],
    accuracy: float | None,
    shapes: dict[str, list[int]] | None,
    parent_id: str | None,
    variant: str | None,
    detail: dict[str, Any],
) -> Any:
    return catalog.register_model(
        session, actor, model_id, sha, size, analysis, accuracy=accuracy, input_shapes=shapes,
        parent_id=parent_id, variant=variant, detail=detail,
    )  # fmt: skip


def device_view(device: Device, beat: dict[str, Any] | None) -> dict[str, Any]:
    battery = None
    if device.battery_capacity_wh is not None:
        battery = {
            "capacity_wh": device.battery_capacity_wh,
            "min_pct": device.battery_min_pct,
            "level_pct": (beat or {}).get("battery_pct"),
        }
    return {
        "id": device.id,
        "name": device.name,
        "tier": device.tier,
        "gflops": device.gflops,
        "memory_mb": device.memory_mb,
        "power_w": {"idle": device.power_idle_w, "busy": device.power_busy_w},
        "battery": battery,
        "grid_gco2_per_kwh": device.grid_gco2_per_kwh,
        "embodied_kgco2e": device.embodied_kgco2e,
        "lifetime_h": device.lifetime_h,
        "labels": device.labels,
        "data_plane_url": device.data_plane_url,
        "emulated": device.emulated,
        "state": device.state,
        "alive": beat is not None,
        "last_heartbeat": beat,
        "created_at": device.created_at.isoformat(),
    }
