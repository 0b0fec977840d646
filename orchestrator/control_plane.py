"""The control plane's wiring: its state stores, the desired-state owner, the planner, the
reconcile loop and the per-resource services the routes call, built and started here.

SQL work runs in worker threads (`run_sync`), CPU-heavy work (solving, ONNX analysis,
partition extraction, quantization) in a process pool (`in_pool`), and the heartbeat path
touches neither (`orchestrator.services.agents`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import audit, integrity, samples
from orchestrator.artifacts import Artifacts
from orchestrator.blobs import DatabaseBlobs
from orchestrator.carbon.boavizta import Boavizta
from orchestrator.carbon.live import GridNow
from orchestrator.db.engine import make_engine, session_factory
from orchestrator.desired.states import DesiredStates
from orchestrator.events import EventBus
from orchestrator.heap import HeapPolicy
from orchestrator.live import open_live_state
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.planner import Planner
from orchestrator.pool import solver_pool
from orchestrator.private import private_dir
from orchestrator.ratelimit import RateLimit
from orchestrator.reconcile import LoopConfig, Reconciler
from orchestrator.reconcile_gateway import ReconcileGateway
from orchestrator.retention import AuditRetention
from orchestrator.sampler import Sampler
from orchestrator.services.agents import Agents
from orchestrator.services.plans import Plans
from orchestrator.settings import Settings
from orchestrator.triggers import Trigger

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
        boavizta: Boavizta | None = None,
    ) -> None:
        self.settings = settings
        self._given_executor = executor
        self._pool: ProcessPoolExecutor | None = None
        # Embedded mode migrates at start; a server on PostgreSQL is migrated by
        # `continuum db upgrade` (one deliberate step per release, not one per replica).
        self._migrate = settings.embedded if migrate is None else migrate
        self.metrics = Metrics()
        # A given client is the caller's to close (tests share one worker across many
        # apps: each worker takes a second or more of CPU to import Boavizta's tables).
        self._own_boavizta = boavizta is None
        self.boavizta = boavizta if boavizta is not None else Boavizta(settings.boavizta_python)
        self._warm: asyncio.Task[None] | None = None
        self.blobs = (
            DatabaseBlobs(lambda: self.sessions) if settings.artifacts_in_database else None
        )
        self.artifacts = Artifacts(settings.artifact_dir, self.blobs)
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
            record_triggers=self.record_triggers,
            request_replan=self.planner.request,
            publish=self.events.publish,
            grid=GridNow(settings.grid_series),
        )
        self.reconciler = Reconciler(self.gateway, self._loop_config(), self.metrics)
        # Read at each scrape: a leader whose lease ran out mid-tick (paused, cut off from
        # the lock) stops showing 1 then, not at its next look at the lock.
        self.metrics.is_leader.set_function(lambda: 1.0 if self.reconciler.is_leader else 0.0)
        self.agents = Agents(
            settings,
            self.live,
            self.run_sync,
            self.events.publish,
            self.metrics,
            self.desired,
            poke=self.reconciler.poke,
            boavizta=self.boavizta,
        )
        self.plans = Plans(self.planner, self.desired, self.live, self.run_sync)
        self.retention = AuditRetention(
            self.run_sync,
            settings.audit_retention_days,
            settings.audit_retention_rows,
            settings.audit_sweep_interval_s,
        )
        self.enroll_limit = RateLimit(
            settings.enroll_rate_per_source,
            settings.enroll_rate_global,
            settings.enroll_rate_window_s,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sampler = Sampler(
            self.run_sync,
            self.live,
            lambda: self.reconciler.is_leader,
            settings.console_sample_interval_s,
            samples.Retention(
                raw_keep_s=settings.console_raw_keep_s,
                coarse_s=settings.console_coarse_s,
                history_s=settings.console_history_h * 3600.0,
            ),
        )

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        if settings.embedded:
            private_dir(settings.data_dir)
        if self._migrate:
            from orchestrator.db.migrate import upgrade

            await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._sweep_staging)
        self.engine = make_engine(settings)
        self.sessions = session_factory(self.engine)
        await self._report_bad_rows()
        if self.blobs is not None:
            # Artifacts stored before the setting was on (one replica, before others).
            store = self.artifacts
            copied = await asyncio.to_thread(
                self.blobs.share_all, lambda sha: store.path(sha) if store.has(sha) else None
            )
            if copied:
                log.warning("copied %d artifact(s) into the database for other replicas", copied)
        await self.agents.load()
        await self.desired.load()
        self.events.listen(self._on_event)
        await self.events.start()
        self.reconciler.start()
        self.sampler.start()
        self.heap.start()
        self.retention.start()
        # Boavizta's worker takes seconds to import its tables: start it now, so that the
        # first enrollment or zone does not wait for it (no Boavizta here: no matter).
        self._warm = asyncio.create_task(asyncio.to_thread(self._warm_boavizta))

    def _sweep_staging(self) -> None:
        settings = self.settings
        age = 0.0 if settings.embedded else settings.staging_sweep_after_s
        files, size = self.artifacts.sweep(age)
        if files:
            log.warning(
                "removed %d file(s), %.1f MB, that interrupted uploads left in %s",
                files, size / 1e6, self.artifacts.root,
            )  # fmt: skip

    def begin_shutdown(self) -> None:
        """The server got SIGTERM: answer the long polls and end the event streams now,
        so the connections the server waits for close at once. Safe from a signal handler
        (it only schedules the work on the control plane's loop)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self.desired.close_polls()
        self.events.end_streams()

    def _warm_boavizta(self) -> None:
        try:
            _ = self.boavizta.catalog
        except Exception as exc:  # a warm-up: whatever failed fails again, in a request
            log.info("derived carbon figures unavailable: %s", exc)

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
            link_cost_step=s.link_cost_step,
            latency_drift_fraction=s.latency_drift_fraction,
            startup_grace_s=s.startup_grace_s,
            grid_change_fraction=s.grid_change_fraction,
        )

    async def stop(self) -> None:
        await self.retention.stop()
        await self.heap.stop()
        await self.sampler.stop()
        await self.reconciler.stop()
        await self.desired.stop()
        await self.planner.stop()
        await self.events.stop()
        await self.live.close()
        if self._own_boavizta:
            # Before awaiting the warm-up: closing ends a worker still importing its tables,
            # so a stop never waits seconds for a catalog nobody will read.
            await asyncio.to_thread(self.boavizta.close)
        if self._warm is not None:
            await self._warm
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
            self._pool = solver_pool(self.settings.solver_workers)
        return self._pool

    async def _report_bad_rows(self) -> None:
        """Log what an older version stored that no read can serve (`continuum db check`
        lists it all): the API refuses such values now, but rows from before remain."""
        bad = await self.run_sync(integrity.scan, 50)
        for row in bad[:20]:
            log.warning("bad row left from before: %s", row)
        if bad:
            log.warning(
                "%s bad value(s) in the database: run `continuum db check` for the list, "
                "then fix or delete those rows", "50 or more" if len(bad) >= 50 else len(bad),
            )  # fmt: skip

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
        if kind == "device" and data.get("change") == "deleted":
            self.forget_agent(str(data.get("device_id")))
        elif kind == "device":
            self.gateway.devices_changed()

    # -- triggers (shared by the API and the reconcile loop) -------------------------------
    async def record_triggers(self, triggers: Sequence[Trigger]) -> None:
        """The triggers of one reconcile tick, as `record_trigger` records each (no
        re-plan: the loop asks for one), their audit entries in one transaction: a fleet
        coming back at once fires thousands of joins, and a transaction each held the
        leader's loop for tens of seconds (bench/RESULTS.md, hb6)."""

        def write(session: Session) -> None:
            for t in triggers:
                audit.record(session, "loop", f"trigger.{t.kind}", t.target, t.reason,
                             {"observed_at": t.observed_at})  # fmt: skip

        await self.run_sync(write)
        await self.events.publish_many(
            "trigger",
            [{"kind": t.kind, "target": t.target, "reason": t.reason,
              "observed_at": t.observed_at} for t in triggers],
        )  # fmt: skip

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

    # -- what the services ask of the control plane (orchestrator.services.context) ------
    async def request_replan(
        self,
        reason: str,
        *,
        solver: str | None = None,
        wait: bool = False,
        observed_at: float | None = None,
        force: bool = False,
    ) -> None:
        await self.planner.request(
            reason, solver=solver, wait=wait, observed_at=observed_at, force=force
        )

    def forget_agent(self, device_id: str) -> None:
        """A deleted device: drop its cached agent tokens now, not when its event arrives."""
        self.gateway.devices_changed()
        self.agents.forget(device_id)

    def links_changed(self) -> None:
        self.gateway.links_changed()
