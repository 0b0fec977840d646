"""The control plane as one object: its state stores, its planner, the agents' side
(enrollment, heartbeats, desired state) and the plan. Operators' resources are served by
`orchestrator.services`, over this object as their `Context`.

SQL work runs in worker threads (`run_sync`), CPU-heavy work (solving, ONNX analysis,
partition extraction, quantization) in a process pool, and the heartbeat path touches
neither: it authenticates against an in-memory cache of agent-token hashes and writes
the live state only.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from orchestrator import audit, desired_state, fleet, tokens
from orchestrator.artifacts import Artifacts
from orchestrator.db.engine import make_engine, session_factory
from orchestrator.db.tables import PlanVersion, Rollout
from orchestrator.desired_cache import DesiredCache
from orchestrator.errors import Invalid, NotFound
from orchestrator.events import EventBus
from orchestrator.gateway import ControlPlaneGateway
from orchestrator.heap import HeapPolicy
from orchestrator.live import open_live_state
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.planner import Outcome, Planner
from orchestrator.reconcile import LoopConfig, Reconciler
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# A long poll re-checks the version it has in memory this often, so a wake-up lost in
# the gap between checking and subscribing costs at most this long.
_POLL_SLICE_S = 1.0
# How long the cached desired states are served without asking SQL for the revision. This
# replica learns of a new revision at once (its own rollouts, other replicas' events); the
# SQL read only covers an event that never arrived. Asking SQL on every long poll queued a
# large fleet's re-polls on the SQL worker threads (1,000 agents: seconds before the
# affected agents got a new revision, and the loop's own SQL waited behind them).
_REVISION_CHECK_S = 1.0


def load_or_create_admin_token(settings: Settings) -> str:
    """CONTINUUM_ADMIN_TOKEN, else the token in the data directory's file, else a new one
    written there readable by its owner only (created 0600, never widened)."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.admin_token_file
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = tokens.new_token(tokens.ADMIN_PREFIX)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    log.warning("generated an admin token in %s", path)
    return secret


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
        self._given_live = live
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
        self.planner = Planner(self, self._executor)
        self.admin_token = ""
        self.version = 0  # the desired-state revision in force, as this replica last saw it
        self.live_version = 0  # the newest revision every agent switched to (HeartbeatAck)
        self.plan_version_hint = 0  # the plan version in force, as this replica last saw it
        self.gateway = ControlPlaneGateway(self)
        self.reconciler = Reconciler(self.gateway, self._loop_config(), self.metrics)
        self._agent_tokens: dict[str, str] = {}  # token hash -> device id
        self._desired = DesiredCache()
        self.heap = HeapPolicy(settings.gc_freeze)
        # A plan's states as its commit computed them, for its switch (see stash_plan_states).
        self._plan_states: tuple[int, dict[str, dict[str, Any]]] | None = None
        self._refresh: asyncio.Task[DesiredCache] | None = None

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
        self.admin_token = await asyncio.to_thread(load_or_create_admin_token, settings)
        await self.run_sync(fleet.ensure_admin_key, self.admin_token)
        self._agent_tokens = await self.run_sync(fleet.agent_token_hashes)
        self.version = await self.run_sync(desired_state.current_version)
        self.live_version = await self.run_sync(desired_state.live_version)
        self.plan_version_hint = await self.run_sync(_plan_version)
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
        if self._refresh is not None and not self._refresh.done():
            # Its SQL runs in a worker thread: let it finish before the engine goes.
            await asyncio.wait({self._refresh}, timeout=10.0)
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

    async def _on_event(self, message: dict[str, Any]) -> None:
        """Keep this replica's caches in step with what any replica decided."""
        data = message.get("data") or {}
        kind = message.get("type")
        if kind == "delivery":
            self.gateway.on_delivery(str(data["device_id"]), int(data["revision"]), data["at"])
            return
        if kind == "placement" and data.get("in_force"):
            self.plan_version_hint = max(self.plan_version_hint, int(data.get("version") or 0))
        if kind == "rollout":
            self.version = max(self.version, int(data.get("revision") or 0))
            if data.get("state") == "rolled_back":
                self.plan_version_hint = await self.run_sync(_plan_version)
            if data.get("live_version") is not None:
                self.live_version = max(self.live_version, int(data["live_version"]))
            # No invalidation: the cached states are keyed by revision, and self.version
            # now makes an older cache stale; a phase that keeps its revision (`live`) keeps
            # every agent's desired state too, and recomputing it cost a whole fleet's worth.
        if kind == "device":
            self.gateway.devices_changed()
        if kind == "device" and data.get("change") == "deleted":
            device_id = data.get("device_id")
            for digest in [d for d, dev in self._agent_tokens.items() if dev == device_id]:
                self._agent_tokens.pop(digest, None)

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

    # -- auth ------------------------------------------------------------------------------
    async def operator(self, token: str) -> str | None:
        """The actor name of an operator token, or None."""
        if tokens.same(tokens.hash_token(token), tokens.hash_token(self.admin_token)):
            return "operator:admin"
        key = await self.run_sync(fleet.operator_for, token)
        return f"operator:{key.name}" if key is not None else None

    def cached_agent(self, token_hash: str) -> str | None:
        """The device of an agent-token hash, from the cache only (the hot path)."""
        return self._agent_tokens.get(token_hash)

    async def agent_for(self, token: str) -> str | None:
        """The device an agent token belongs to. The cache answers the hot path; a miss
        (a device enrolled on another replica) falls back to SQL once."""
        digest = tokens.hash_token(token)
        device_id = self._agent_tokens.get(digest)
        if device_id is not None:
            return device_id
        device_id = await self.run_sync(fleet.device_for_token_hash, digest)
        if device_id is not None:
            self._agent_tokens[digest] = device_id
        return device_id

    # -- enrollment and heartbeats ------------------------------------------------------
    async def enroll(self, request: dict[str, Any]) -> dict[str, Any]:
        device, secret, existed = await self.run_sync(fleet.enroll, request)
        for digest in [d for d, dev in self._agent_tokens.items() if dev == device.id]:
            self._agent_tokens.pop(digest, None)  # a re-enrolled device's old token dies
        self._agent_tokens[tokens.hash_token(secret)] = device.id
        if existed:
            self.invalidate_desired()  # its data-plane URL may have changed
        change = "reenrolled" if existed else "enrolled"
        await self.events.publish("device", {"device_id": device.id, "change": change})
        return {
            "device_id": device.id,
            "agent_token": secret,
            "heartbeat_interval_s": self.settings.heartbeat_interval_s,
        }

    @property
    def liveness_ttl_s(self) -> float:
        return self.settings.heartbeat_interval_s * self.settings.lost_after_intervals

    async def heartbeat(self, device_id: str, beat: dict[str, Any]) -> int:
        """Record a heartbeat; returns the plan version in force (the agent compares it
        with what it runs)."""
        ttl = self.liveness_ttl_s
        links = beat.pop("links", [])
        beat["at"] = time.time()
        await self.live.put_heartbeat(device_id, beat, ttl)
        for link in links:
            if link["peer"] != device_id:
                await self.live.put_link(device_id, link["peer"], link["mbps"], link["rtt_ms"], ttl)
        self.metrics.heartbeats.inc()
        # The reconcile loop sees joins, batteries, links and latency in heartbeats.
        self.reconciler.poke()
        return self.version

    # -- triggers and rollouts (shared by the API and the reconcile loop) ----------------
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
        for digest in [d for d, dev in self._agent_tokens.items() if dev == device_id]:
            self._agent_tokens.pop(digest, None)

    def links_changed(self) -> None:
        self.gateway.links_changed()

    def invalidate_desired(self) -> None:
        self._desired.stale = True
        self._plan_states = None

    async def publish_revision(
        self,
        plan_version: int,
        revision: int,
        state: str,
        devices: list[str],
        *,
        live: int | None = None,
    ) -> None:
        """A rollout phase changed what agents run (or made a revision live): tell every
        replica and wake the affected agents' long polls."""
        self.version = max(self.version, revision)
        if live is not None:
            self.live_version = max(self.live_version, live)
        # The cached desired states go stale through self.version (see _on_event).
        data: dict[str, Any] = {"version": plan_version, "revision": revision, "state": state}
        if live is not None:
            data["live_version"] = live
        await self.events.publish("rollout", data)
        for device_id in devices:
            await self.live.publish(desired_state.channel(device_id), {"version": revision})

    # -- desired state -------------------------------------------------------------------
    def install_desired(
        self, version: int, states: dict[str, dict[str, Any]], targets: list[str]
    ) -> None:
        """Serve these states (computed by a commit at `version`) without recomputing them.
        Stamped copies: the same dicts may be installed again at a later revision."""
        stamped = {d: {**state, "version": version} for d, state in states.items()}
        self._desired.install(version, stamped, frozenset(targets))

    def stash_plan_states(self, plan_version: int, states: dict[str, dict[str, Any]]) -> None:
        """Every device's state under a plan alone, for its rollout's switch; dropped by any
        change that invalidates desired states meanwhile."""
        self._plan_states = (plan_version, states)

    def install_switch(self, plan_version: int, revision: int, targets: list[str]) -> bool:
        """Serve the stashed states of `plan_version` at its switch's revision, if still
        valid (False: they will be computed from SQL)."""
        stash = self._plan_states
        if stash is None or stash[0] != plan_version:
            return False
        self.install_desired(revision, stash[1], targets)
        return True

    async def _desired_states(self, force: bool = False) -> DesiredCache:
        """The cache when fresh; else one refresh that every caller waiting meanwhile shares
        (`force`: a new one). Not a lock: a lock hands over to one waiter per loop turn, and
        a fleet's long polls queued behind it for seconds."""
        if not force and self._desired.fresh(self.version, _REVISION_CHECK_S):
            return self._desired
        loop = asyncio.get_running_loop()
        refresh = self._refresh
        if force or refresh is None or refresh.done() or refresh.get_loop() is not loop:
            refresh = self._refresh = loop.create_task(self._refresh_desired(force))
        # Shielded: a long poll whose client went away must not cancel the others' refresh.
        return await asyncio.shield(refresh)

    async def _refresh_desired(self, force: bool) -> DesiredCache:
        cache = self._desired
        version = await self.run_sync(desired_state.current_version)
        self.version = max(self.version, version)
        if force or cache.stale or cache.version is None or cache.version < version:
            base = self.settings.public_url or ""
            version, states, targets = await self.run_sync(desired_state.compute, base)
            cache.install(version, states, frozenset(targets))
            self.heap.settle()
        cache.confirm()
        return cache

    async def desired(self, device_id: str) -> dict[str, Any]:
        cache = await self._desired_states()
        state = cache.states.get(device_id)
        if state is None:
            # Enrolled after the cache was computed, or deleted: ask SQL which.
            await self.run_sync(fleet.get_device, device_id)
            cache = await self._desired_states(force=True)
            state = cache.states.get(device_id) or {
                "device_id": device_id,
                "version": cache.version or 0,
                "partitions": [],
                "cascade_stages": [],
                "sources": [],
            }
        return state

    async def wait_desired(self, device_id: str, after: int, wait_s: float) -> dict[str, Any]:
        """A long poll: answered once this agent has news (`orchestrator.desired_cache`),
        or with the state of now when `wait_s` runs out."""
        state = await self.desired(device_id)
        deadline = time.monotonic() + min(max(wait_s, 0.0), self.settings.long_poll_max_s)
        news = self._desired.news(device_id, after)
        checked = self.version
        while not news:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            woken = await self.live.wait(
                desired_state.channel(device_id), min(remaining, _POLL_SLICE_S)
            )
            if woken is not None:
                # The wake-up names the new revision (maybe another replica's, whose event
                # has not arrived): a cache older than that is stale.
                self.version = max(self.version, int(woken.get("version") or 0))
            if woken is not None or self.version > checked:
                checked = self.version
                state = await self.desired(device_id)
                news = self._desired.news(device_id, after)
        if news and state["version"] > after:
            # The rollout's acknowledgement that this agent has its new desired state. This
            # replica's loop is told directly, without the round trip through the event bus
            # (which can still lose events while Redis is unreachable): a lost delivery
            # would leave the reaction time unmeasured.
            at = time.time()
            self.gateway.on_delivery(device_id, int(state["version"]), at)
            await self.events.publish(
                "delivery", {"device_id": device_id, "revision": state["version"], "at": at}
            )
        return state

    async def scenario(self) -> dict[str, Any]:
        built = await self.planner.build()
        return built.scenario

    async def solve(self, actor: str, solver_name: str | None, dry_run: bool) -> Outcome:
        if solver_name is not None:
            import solver

            known = list(solver.solvers())
            if solver_name not in known:
                raise Invalid(
                    f"solver: unknown solver {solver_name!r}; choose one of {', '.join(known)}",
                    field="solver",
                )
        if dry_run:
            return await self.planner.solve(f"what-if by {actor}", solver_name, dry_run=True)
        await self.planner.request(
            f"solve requested by {actor}", solver=solver_name, wait=True, force=True
        )
        if self.planner.last_error is not None:
            raise RuntimeError(f"the solve failed: {self.planner.last_error}")
        last = self.planner.last
        if last is None:  # pragma: no cover - a served request always leaves an outcome
            raise RuntimeError("the solve produced nothing")
        return last

    async def plan_view(self) -> dict[str, Any]:
        def read(session: Session) -> tuple[PlanVersion | None, Rollout | None]:
            row = desired_state.in_force(session)
            if row is None:
                return None, None
            rollout = session.scalar(
                select(Rollout)
                .where(Rollout.plan_version == row.version)
                .order_by(Rollout.id.desc())
            )
            return row, rollout

        row, rollout = await self.run_sync(read)
        cache = await self._desired_states()
        if row is None:
            raise NotFound("no plan is in force yet: create a deployment on an alive device")
        revision, states = cache.version or 0, cache.states
        beats = await self.live.heartbeats()
        agents: dict[str, Any] = {}
        for device_id, state in sorted(states.items()):
            keys = desired_state.hosted_keys(state)
            if not keys:
                continue
            beat = beats.get(device_id) or {}
            ready = beat.get("partitions") or {}
            agents[device_id] = {
                "alive": device_id in beats,
                "running_version": beat.get("desired_version"),
                "ready": sorted(k for k in keys if ready.get(k)),
                "pending": sorted(k for k in keys if not ready.get(k)),
            }
        # An agent runs what it should when it has no news: the revision it runs may be
        # older than the current one when its desired state did not change since.
        done = all(
            not a["pending"] and not cache.news(d, int(a["running_version"] or -1))
            for d, a in agents.items()
        ) and (rollout is None or rollout.state in ("live", "switching"))
        return {
            "version": row.version,
            "created_at": row.created_at.isoformat(),
            "reason": row.reason,
            "plan": row.plan,
            "stats": row.stats,
            "revision": revision,
            "live_version": self.live_version,
            "rollout": {
                "state": rollout.state if rollout is not None else "live",
                "started_at": rollout.started_at.isoformat() if rollout is not None else None,
                "complete": done,
                "agents": agents,
            },
        }


def _plan_version(session: Session) -> int:
    row = desired_state.in_force(session)
    return row.version if row is not None else 0
