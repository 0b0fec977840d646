"""Solving the live scenario into plan versions, off the event loop, with coalescing.

Triggers (a new deployment, a drained device, an operator's solve...) call `request`.
While a solve runs, further requests only bump a counter; when it finishes, exactly one
more solve covers all of them. `request(..., wait=True)` returns once a solve that began
after the request has been committed, so a caller sees its own change reflected.

The solver runs in a process pool (it holds the GIL); partitions the plan needs are
extracted there too. Once a plan is in force, re-solves are incremental (only the apps the
change touches move) and the hysteresis rule (`orchestrator.hysteresis`) decides whether
the candidate replaces the plan in force. Every candidate is kept as a plan version with
its solver statistics and reason; an applied one starts a make-before-break rollout
(`orchestrator.rollouts`): a new desired-state revision, an audit entry per placement,
and a wake-up on every affected agent's desired-state channel. A candidate not applied
(infeasible, or not better by the margin) is stored for the record and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator import audit, rollouts, work
from orchestrator.db.tables import Deployment, PlanVersion
from orchestrator.desired_state import channel
from orchestrator.partitions import missing_ranges, store_partitions
from orchestrator.plan_versions import prune
from orchestrator.scenario_builder import Built, PlanCache, Snapshot, build, read_snapshot

if TYPE_CHECKING:
    from orchestrator.control_plane import ControlPlane

log = logging.getLogger(__name__)

LOCK = "planner"
FALLBACK_SOLVER = "ilp"
_LOCK_RETRY_S = 0.2


@dataclass
class Outcome:
    """What one solve produced (also the answer to a dry run)."""

    scenario: dict[str, Any]
    plan: dict[str, Any] | None
    version: int | None = None
    in_force: bool = False
    waiting: dict[str, str] = field(default_factory=dict)
    note: str = ""
    decision: str = ""
    revision: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


class Planner:
    def __init__(self, cp: ControlPlane, executor: Callable[[], Executor]) -> None:
        self._cp = cp
        self._executor = executor
        self._requested = 0
        self._done = 0
        self._reasons: list[str] = []
        self._observed_at: float | None = None  # the earliest trigger's observation
        self._force = False
        self._solver_override: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._holder = f"planner-{uuid.uuid4().hex[:12]}"
        self._plans: PlanCache = {}
        self.last: Outcome | None = None
        self.last_error: str | None = None

    # -- triggers -------------------------------------------------------------------------
    async def request(
        self,
        reason: str,
        *,
        solver: str | None = None,
        wait: bool = False,
        observed_at: float | None = None,
        force: bool = False,
    ) -> None:
        """`observed_at` (epoch seconds): when the condition behind the request was
        observed; the rollout measures its reaction time from it. `force` (an operator's
        explicit solve) applies any feasible candidate, bypassing the hysteresis margin."""
        self._force = self._force or force
        self._requested += 1
        wanted = self._requested
        self._reasons.append(reason)
        if observed_at is not None:
            self._observed_at = min(self._observed_at or observed_at, observed_at)
        if solver is not None:
            self._solver_override = solver
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="continuum-planner")
        if wait:
            async with self._changed:
                await self._changed.wait_for(lambda: self._done >= wanted)

    async def settle(self) -> None:
        """Wait until every request so far has been served (tests, shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def stop(self, grace_s: float = 30.0) -> None:
        """Let a running solve finish (its plan is a decision worth keeping), then cancel
        whatever is left after grace_s."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _run(self) -> None:
        while self._done < self._requested:
            covered = self._requested
            reasons, self._reasons = self._reasons, []
            solver_name, self._solver_override = self._solver_override, None
            observed_at, self._observed_at = self._observed_at, None
            force, self._force = self._force, False
            reason = "; ".join(dict.fromkeys(reasons)) or "requested"
            try:
                self.last = await self._locked_solve(reason, solver_name, observed_at, force)
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # isolated: one failed solve must not stop the next
                log.exception("planner: solve failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                await self._cp.run_sync(self._record_failure, reason, self.last_error)
            self._cp.heap.settle()  # the plan, its scenario and states live on
            async with self._changed:
                self._done = covered
                self._changed.notify_all()

    async def _locked_solve(
        self,
        reason: str,
        solver_name: str | None,
        observed_at: float | None = None,
        force: bool = False,
    ) -> Outcome:
        live = self._cp.live
        # One planner at a time across replicas: two concurrent commits would both try to
        # put their plan in force. The lease is short and renewed while this solve runs,
        # like the reconcile loop's: a replica killed mid-solve blocks the others' plans for
        # one lease, not for a whole solver time limit.
        ttl = self._cp.settings.leader_ttl_s
        while not await live.acquire(LOCK, self._holder, ttl):
            await asyncio.sleep(_LOCK_RETRY_S)
        renewal = asyncio.create_task(self._renew(ttl), name="continuum-planner-lease")
        try:
            return await self.solve(
                reason, solver_name, dry_run=False, observed_at=observed_at, force=force
            )
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await live.release(LOCK, self._holder)

    async def _renew(self, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3.0)
            try:
                held = await self._cp.live.acquire(LOCK, self._holder, ttl)
            except Exception:  # a live-state hiccup: the next renewal may still make it
                log.warning("planner: could not renew the planner lease", exc_info=True)
                continue
            if not held:
                log.error("planner: the planner lease was lost during a solve")

    # -- one solve ------------------------------------------------------------------------
    async def build(self) -> Built:
        snap: Snapshot = await self._cp.run_sync(read_snapshot, self._plans)
        beats = await self._cp.live.heartbeats()
        measured = await self._cp.live.links()
        return build(snap, beats, measured)

    async def solve(
        self,
        reason: str,
        solver_name: str | None,
        *,
        dry_run: bool,
        observed_at: float | None = None,
        force: bool = False,
    ) -> Outcome:
        clock = _Stages(self._cp.metrics)
        built = await self.build()
        clock.lap("build")
        outcome = Outcome(scenario=built.scenario, plan=None, waiting=built.waiting)
        if not built.solvable:
            outcome.note = "no device is alive and active: nothing to solve"
            if not dry_run:
                await self._cp.run_sync(self._mark_waiting, built.waiting, outcome.note)
            return outcome
        if not built.scenario["apps"] and not dry_run and not await self._has_placements():
            # Nothing deployed and nothing running: a new plan version would say nothing.
            outcome.note = "no deployment to place"
            if built.waiting:
                await self._cp.run_sync(self._mark_waiting, built.waiting, outcome.note)
            return outcome
        name = solver_name or self._cp.settings.solver
        if dry_run:
            plan, note = await self._solve_in_pool(built.scenario, name)
            outcome.plan, outcome.note = plan, note
            return outcome
        result, note = await self._replan_in_pool(built, name, force)
        clock.lap("solve")
        plan = result["plan"]
        outcome.plan, outcome.note, outcome.decision = plan, note, result["decision"]
        if result["apply"]:
            await self._materialize(plan)
            clock.lap("materialize")
        result["timings"] = clock.laps
        version, revision, devices, staged = await self._cp.run_sync(
            self._commit, built, result, reason + (f" ({note})" if note else ""), observed_at
        )
        clock.lap("commit")
        outcome.timings = clock.laps
        outcome.version, outcome.in_force, outcome.revision = (
            version,
            revision is not None,
            revision,
        )
        await self._announce(outcome, devices, staged)
        return outcome

    async def _has_placements(self) -> bool:
        def read(session: Session) -> bool:
            row = session.scalar(select(PlanVersion).where(PlanVersion.in_force.is_(True)))
            return row is not None and bool(row.plan.get("apps"))

        return await self._cp.run_sync(read)

    async def _solve_in_pool(
        self, scenario: dict[str, Any], name: str
    ) -> tuple[dict[str, Any], str]:
        loop = asyncio.get_running_loop()
        limit = self._cp.settings.solver_time_limit_s
        started = time.perf_counter()
        try:
            plan = await loop.run_in_executor(
                self._executor(), work.solve_scenario, scenario, name, limit
            )
            note = ""
        except NotImplementedError:
            # A solver still being written must not leave the fleet without a plan.
            plan = await loop.run_in_executor(
                self._executor(), work.solve_scenario, scenario, FALLBACK_SOLVER, limit
            )
            note = f"solver {name!r} is not implemented; used {FALLBACK_SOLVER!r}"
        self._cp.metrics.observe_solve(time.perf_counter() - started)
        return plan, note

    async def _replan_in_pool(
        self, built: Built, name: str, force: bool
    ) -> tuple[dict[str, Any], str]:
        loop = asyncio.get_running_loop()
        limit = self._cp.settings.solver_time_limit_s
        # A forced solve is a full one (every app re-placed) with no margin.
        previous = None if force else built.previous_scenario
        margin = 0.0 if force else built.margin
        args = (built.scenario, previous, built.previous_plan)
        started = time.perf_counter()
        try:
            result = await loop.run_in_executor(
                self._executor(), work.replan, *args, name, limit, margin, force
            )
            note = ""
        except NotImplementedError:
            result = await loop.run_in_executor(
                self._executor(), work.replan, *args, FALLBACK_SOLVER, limit, margin, force
            )
            note = f"solver {name!r} is not implemented; used {FALLBACK_SOLVER!r}"
        self._cp.metrics.observe_solve(time.perf_counter() - started)
        return result, note

    async def _materialize(self, plan: dict[str, Any]) -> None:
        """Extract (once per model and block range) the partitions the plan needs."""
        needed: dict[str, set[tuple[int, int]]] = {}
        for app in plan["apps"]:
            if app.get("segments"):
                needed.setdefault(app["model"], set()).update(
                    (s["first"], s["last"]) for s in app["segments"]
                )
        if not needed:
            return
        jobs = await self._cp.run_sync(missing_ranges, needed, self._cp.artifacts)
        loop = asyncio.get_running_loop()
        root = str(self._cp.artifacts.root)
        for model_id, (path, shapes, ranges) in jobs.items():
            made = await loop.run_in_executor(
                self._executor(), work.extract_ranges, path, shapes, ranges, root
            )
            await self._cp.run_sync(store_partitions, model_id, made)

    def _commit(
        self,
        session: Session,
        built: Built,
        result: dict[str, Any],
        reason: str,
        observed_at: float | None,
    ) -> tuple[int, int | None, list[str], _Staged | None]:
        """Keep the candidate as a plan version; when applied, put it in force through a
        new rollout. Returns (plan version, the rollout's revision or None, the devices to
        wake, the desired states the rollout computed or None)."""
        plan = result["plan"]
        apply = bool(result["apply"])
        feasible = plan["status"] != "infeasible"
        # The plan in force when the scenario was read (the planner lock keeps another
        # plan from coming in between): a fleet's JSON not decoded again.
        running = {a["id"]: a for a in (built.previous_plan or {}).get("apps", [])}
        from_version = rollouts.routes_version(session)  # before the new row changes it
        if apply:
            session.execute(
                update(PlanVersion).where(PlanVersion.in_force.is_(True)).values(in_force=False)
            )
        stats = dict(plan.get("stats") or {})
        stats["waiting"] = built.waiting
        stats["decision"] = result["decision"]
        stats["applied"] = apply
        stats["incremental"] = result["incremental"]
        stats["derived_problem"] = result.get("derived_problem", False)
        stats["current_objective"] = result["current_objective"]
        stats["broken"] = result["broken"]
        # Where this plan's time went before the commit (seconds): snapshot and scenario
        # (build), the pool round trip (solve), partition extraction (materialize).
        stats["timings"] = {k: round(v, 4) for k, v in (result.get("timings") or {}).items()}
        unplaced: dict[str, str] = result.get("unplaced") or {}
        stats["unplaced"] = unplaced
        row = PlanVersion(
            created_at=audit.now(),
            solver=plan["solver"],
            status=plan["status"],
            objective=plan.get("objective"),
            bound=plan.get("bound"),
            solve_s=float(plan.get("solve_s") or 0.0),
            reason=f"{reason} -> {result['decision']}",
            # What the plan places: the live scenario without the apps set aside, so
            # that `continuum solve` replays this very plan.
            scenario=result.get("scenario") or built.scenario,
            plan=plan,
            stats=stats,
            in_force=apply,
        )
        session.add(row)
        session.flush()
        # The plan in force until now is no longer flagged so, but its rollout may roll
        # back to it.
        prune(session, row.version - self._cp.settings.plan_history, built.plan_version)
        placed = {app["id"]: app for app in plan["apps"]}
        in_scenario = {a["id"] for a in built.scenario["apps"]}
        stamp = audit.now()
        for dep in session.scalars(select(Deployment)):
            status = dep.status
            if dep.id in built.waiting:
                status = "waiting"
            elif apply and dep.id in unplaced:
                status = "infeasible"
            elif not feasible and dep.id in in_scenario:
                # Infeasible now; what runs (if anything) keeps running and keeps its status.
                if dep.id not in running:
                    status = "infeasible"
            elif apply and dep.id in placed:
                status = "placed"
            if status != dep.status:  # a fleet's deployments are not rewritten every plan
                dep.status, dep.updated_at = status, stamp
        if not apply:
            action = "placement.infeasible" if not feasible else "placement.kept"
            why = result["decision"] if feasible else f"{plan.get('reason') or 'infeasible'}"
            audit.record(
                session, "planner", action, f"plan_version:{row.version}",
                reason=f"{reason}: {why}", detail={"plan_version": row.version},
            )  # fmt: skip
            for dep_id, why in built.waiting.items():
                audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
            return row.version, None, [], None
        base = self._cp.settings.public_url or ""
        superseded = rollouts.active(session)  # read before start() supersedes it
        known = None
        if built.plan_version is not None and built.previous_plan is not None:
            known = (built.plan_version, built.previous_plan)
        rollout, states, after = rollouts.start(
            session, row, reason, observed_at, from_version, base, known
        )
        moved = 0
        for app in plan["apps"]:
            where = app.get("segments") or app.get("stages") or []
            before = running.get(app["id"]) or {}
            if where == (before.get("segments") or before.get("stages") or []):
                continue  # unmoved: its decision is on record with an earlier version
            moved += 1
            audit.record(
                session,
                "planner",
                "placement.decided",
                f"deployment:{app['id']}",
                reason=row.reason,
                detail={
                    "plan_version": row.version,
                    "revision": rollout.revision,
                    "model": app.get("model"),
                    "placement": where,
                    "latency_ms": app.get("latency_ms"),
                    "energy_j": app.get("energy_j"),
                    "carbon_g": app.get("carbon_g"),
                },
            )
        audit.record(
            session, "planner", "placement.applied", f"plan_version:{row.version}",
            reason=row.reason,
            detail={"plan_version": row.version, "revision": rollout.revision, "moved": moved,
                    "unmoved": len(plan["apps"]) - moved, "unplaced": sorted(unplaced)},
        )  # fmt: skip
        for dep_id, why in built.waiting.items():
            audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
        for dep_id, why in unplaced.items():
            audit.record(
                session, "planner", "placement.unplaced", f"deployment:{dep_id}",
                reason=f"{reason}: {why}", detail={"plan_version": row.version},
            )  # fmt: skip
        # Woken: the rollout's targets, whose desired state changes, and a superseded
        # rollout's, which may lose what it added; no other agent has news
        # (`orchestrator.desired_cache`).
        targets = list(rollout.acks["targets"])
        devices = sorted(set(targets) | set(superseded.targets if superseded else ()))
        assert rollout.revision is not None  # a rollout in loading has one
        staged = _Staged(rollout.revision, states, targets, row.version, after)
        return row.version, rollout.revision, devices, staged

    def _mark_waiting(self, session: Session, waiting: dict[str, str], note: str) -> None:
        for dep in session.scalars(select(Deployment)):
            if dep.id in waiting or dep.status == "pending":
                dep.status = "waiting"
        for dep_id, why in waiting.items():
            audit.record(session, "planner", "placement.waiting", f"deployment:{dep_id}", why)
        audit.record(session, "planner", "placement.skipped", "plan", reason=note)

    def _record_failure(self, session: Session, reason: str, error: str) -> None:
        audit.record(session, "planner", "placement.failed", "plan", reason=f"{reason}: {error}")

    async def _announce(self, outcome: Outcome, devices: list[str], staged: _Staged | None) -> None:
        plan = outcome.plan or {}
        summary = {
            "version": outcome.version,
            "in_force": outcome.in_force,
            "revision": outcome.revision,
            "status": plan.get("status"),
            "objective": plan.get("objective"),
            "solver": plan.get("solver"),
            "decision": outcome.decision,
            "apps": [a["id"] for a in plan.get("apps", [])],
            "timings_ms": {k: round(v * 1000.0, 1) for k, v in outcome.timings.items()},
        }
        self._cp.metrics.plan_versions.inc()
        await self._cp.events.publish("placement", summary)
        if outcome.in_force and outcome.revision is not None:
            self._cp.version = max(self._cp.version, outcome.revision)
            if staged is not None:
                # Computed by the commit: not again, neither now nor at the switch.
                self._cp.install_desired(staged.revision, staged.states, staged.targets)
                self._cp.stash_plan_states(staged.plan_version, staged.switched)
            else:
                self._cp.invalidate_desired()
            await self._cp.events.publish(
                "rollout",
                {"version": outcome.version, "revision": outcome.revision, "state": "loading"},
            )
            for device_id in devices:
                await self._cp.live.publish(channel(device_id), {"version": outcome.revision})


@dataclass
class _Staged:
    """The desired states a commit computed: at its rollout's revision (loading), and under
    the new plan alone (what its switch will publish)."""

    revision: int
    states: dict[str, dict[str, Any]]
    targets: list[str]
    plan_version: int
    switched: dict[str, dict[str, Any]]


class _Stages:
    """Times the stages of one solve, each also exported as `plan_<stage>`."""

    def __init__(self, metrics: Any) -> None:
        self._metrics = metrics
        self._at = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._at
        self._metrics.observe_step(f"plan_{stage}", now - self._at)
        self._at = now
