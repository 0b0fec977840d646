"""Solving the live scenario into plan versions, off the event loop, with coalescing.

Triggers (a new deployment, a drained device, an operator's solve...) call `request`.
While a solve runs, further requests only bump a counter; when it finishes, exactly one
more solve covers all of them. `request(..., wait=True)` returns once a solve that began
after the request has been committed, so a caller sees its own change reflected.

One solve is a pipeline of typed steps: a snapshot of SQL and the live state becomes a
scenario (`orchestrator.scenario_builder`); in the process pool (the solver holds the
GIL) it becomes a `Replacement` (`orchestrator.replacement`: incremental re-solve and the
hysteresis rule), whose plan is parsed once into the solver's `PlanDoc`; the partitions
it needs are extracted there too; then `orchestrator.placement_commit` keeps it as a plan
version and, when applied, starts a make-before-break rollout. An applied plan's desired
states go to the desired-state owner (`Host.desired`), which serves them and wakes the
affected agents. A candidate not applied (infeasible, or not better by the margin) is
stored for the record and changes nothing.

The planner sees the rest of the control plane only through `Host`; tests hand it an
in-memory harness (`tests/orchestrator/harness.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import solver
from orchestrator.artifacts import Artifacts
from orchestrator.carbon.live import GridNow, apply_grid
from orchestrator.desired.states import StagedStates
from orchestrator.live.base import LiveState
from orchestrator.metrics import Metrics
from orchestrator.model_jobs import extract_ranges
from orchestrator.partitions import missing_ranges, store_partitions
from orchestrator.placement_commit import (
    Committed,
    StalePlan,
    commit,
    mark_waiting,
    record_failure,
)
from orchestrator.replacement import Replacement, in_force, replan, solve_scenario
from orchestrator.scenario_builder import Built, PlanCache, Snapshot, build, read_snapshot
from orchestrator.settings import Settings

log = logging.getLogger(__name__)

LOCK = "planner"
FALLBACK_SOLVER = "ilp"
_LOCK_RETRY_S = 0.2
_STALE_TRIES = 3  # solves from a plan gone out of force before the request fails

T = TypeVar("T")


class DesiredPublisher(Protocol):
    """Where an applied plan's rollout is published (`orchestrator.desired.states`)."""

    async def start_rollout(
        self, plan_version: int, revision: int, devices: list[str], staged: StagedStates | None
    ) -> None: ...


class Host(Protocol):
    """What the planner needs around it: the control plane wires the real pieces
    (`orchestrator.control_plane`); tests hand it an in-memory harness."""

    @property
    def settings(self) -> Settings: ...
    @property
    def live(self) -> LiveState: ...
    @property
    def artifacts(self) -> Artifacts: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def desired(self) -> DesiredPublisher: ...

    def run_sync(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """fn(session, *args) in a worker thread, in one transaction."""
        ...

    def in_pool(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """fn(*args) in the process pool."""
        ...

    async def announce(self, summary: dict[str, Any]) -> None:
        """Tell every replica and watcher about a new plan version."""

    def settle_heap(self) -> None:
        """A solve left long-lived objects behind (`orchestrator.heap`)."""


@dataclass
class Outcome:
    """What one solve produced (also the answer to a dry run)."""

    scenario: dict[str, Any]
    plan: solver.PlanDoc | None
    document: dict[str, Any] | None = None  # the plan as stored and answered (JSON)
    version: int | None = None
    in_force: bool = False
    waiting: dict[str, str] = field(default_factory=dict)
    note: str = ""
    decision: str = ""
    revision: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


class Planner:
    def __init__(self, host: Host) -> None:
        self._host = host
        self._requested = 0
        self._done = 0
        self._reasons: list[str] = []
        self._observed_at: float | None = None  # the earliest trigger's observation
        self._force = False
        # The links and batteries whose apps the next re-plan re-places, from the reconcile
        # loop's triggers; None once any request (an operator's, a deployment's) did not say.
        self._targets: set[str] | None = set()
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
        targets: Collection[str] | None = None,
    ) -> None:
        """`observed_at` (epoch seconds): when the condition behind the request was
        observed; the rollout measures its reaction time from it. `force` (an operator's
        explicit solve) applies any feasible candidate, bypassing the hysteresis margin.
        `targets`: the links and batteries whose watch fired
        (`orchestrator.triggers.fired_targets`); of the link figures and battery levels that
        changed since the plan in force, only theirs move apps
        (`orchestrator.replacement.what_fired`). None: every changed figure does. Requests
        served together re-place the union."""
        self._force = self._force or force
        if targets is None:
            self._targets = None
        elif self._targets is not None:
            self._targets.update(targets)
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
            targets, self._targets = self._targets, set()
            reason = "; ".join(dict.fromkeys(reasons)) or "requested"
            try:
                self.last = await self._locked_solve(
                    reason, solver_name, observed_at, force, targets
                )
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # isolated: one failed solve must not stop the next
                log.exception("planner: solve failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                await self._host.run_sync(record_failure, reason, self.last_error)
            self._host.settle_heap()  # the plan, its scenario and states live on
            async with self._changed:
                self._done = covered
                self._changed.notify_all()

    async def _locked_solve(
        self,
        reason: str,
        solver_name: str | None,
        observed_at: float | None = None,
        force: bool = False,
        targets: set[str] | None = None,
    ) -> Outcome:
        live = self._host.live
        # One planner at a time across replicas: two concurrent commits would both try to
        # put their plan in force. The lease is short and renewed while this solve runs,
        # like the reconcile loop's: a replica killed mid-solve blocks the others' plans for
        # one lease, not for a whole solver time limit.
        ttl = self._host.settings.leader_ttl_s
        while not await live.acquire(LOCK, self._holder, ttl):
            await asyncio.sleep(_LOCK_RETRY_S)
        renewal = asyncio.create_task(self._renew(ttl), name="continuum-planner-lease")
        try:
            for attempt in range(1, _STALE_TRIES + 1):
                try:
                    return await self.solve(
                        reason,
                        solver_name,
                        dry_run=False,
                        observed_at=observed_at,
                        force=force,
                        targets=targets,
                    )
                except StalePlan as stale:
                    # Solved from a plan no longer in force: from the one that is, again.
                    self._plans.clear()
                    if attempt == _STALE_TRIES:
                        raise
                    log.warning("planner: %s; solving again", stale)
            raise AssertionError("unreachable")
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await live.release(LOCK, self._holder)

    async def _renew(self, ttl: float) -> None:
        while True:
            await asyncio.sleep(ttl / 3.0)
            try:
                held = await self._host.live.acquire(LOCK, self._holder, ttl)
            except Exception:  # a live-state hiccup: the next renewal may still make it
                log.warning("planner: could not renew the planner lease", exc_info=True)
                continue
            if not held:
                log.error("planner: the planner lease was lost during a solve")

    # -- one solve ------------------------------------------------------------------------
    async def build(self) -> Built:
        """The snapshot of SQL and the live state, as a scenario."""
        snap: Snapshot = await self._host.run_sync(read_snapshot, self._plans)
        beats = await self._host.live.heartbeats()
        measured = await self._host.live.links()
        grid = GridNow(self._host.settings.grid_series)
        zones = {d["zone"] for d in snap.devices if d.get("zone")}
        apply_grid(snap.devices, grid.at(zones, time.time()))
        built = build(snap, beats, measured)
        self._host.metrics.exit_counts_dropped.set(built.evidence_dropped)
        return built

    async def solve(
        self,
        reason: str,
        solver_name: str | None,
        *,
        dry_run: bool,
        observed_at: float | None = None,
        force: bool = False,
        targets: set[str] | None = None,
    ) -> Outcome:
        """Snapshot -> scenario -> `Replacement` (in the pool) -> commit -> rollout.
        `targets`: as in `request`."""
        host = self._host
        clock = _Stages(host.metrics)
        built = await self.build()
        clock.lap("build")
        outcome = Outcome(scenario=built.scenario, plan=None, waiting=built.waiting)
        if not built.solvable:
            outcome.note = "no device is alive and active: nothing to solve"
            if not dry_run:
                await host.run_sync(mark_waiting, built.waiting, outcome.note)
            return outcome
        placing = built.previous_plan is not None and bool(built.previous_plan.apps)
        if not built.scenario["apps"] and not dry_run and not placing:
            # Nothing deployed and nothing running: a new plan version would say nothing.
            outcome.note = "no deployment to place"
            if built.waiting:
                await host.run_sync(mark_waiting, built.waiting, outcome.note)
            return outcome
        name = solver_name or host.settings.solver
        if dry_run:
            document, note = await self._solve_in_pool(built.scenario, name)
            outcome.document, outcome.note = document, note
            outcome.plan = solver.PlanDoc.model_validate(document)
            return outcome
        result, note = await self._replan_in_pool(built, name, force, targets)
        clock.lap("solve")
        outcome.document, outcome.plan = result.document, result.plan
        outcome.note, outcome.decision = note, result.decision
        if result.apply:
            await self._materialize(result.plan)
            clock.lap("materialize")
        settings = host.settings
        committed = await host.run_sync(
            partial(
                commit,
                timings=dict(clock.laps),
                base_url=settings.public_url or "",
                plan_history=settings.plan_history,
            ),
            built,
            result,
            reason + (f" ({note})" if note else ""),
            observed_at,
        )
        clock.lap("commit")
        if committed.revision is not None:
            host.metrics.carbon.set_plan(result.document, result.scenario or built.scenario)
            # The plan now in force, parsed, and the scenario it places: the next build
            # needs both and need not read and parse them from SQL again.
            self._plans.clear()
            self._plans[committed.version] = (result.plan, result.scenario or built.scenario)
        outcome.timings = clock.laps
        outcome.version, outcome.revision = committed.version, committed.revision
        outcome.in_force = committed.revision is not None
        await self._announce(outcome, committed)
        return outcome

    async def _solve_in_pool(
        self, scenario: dict[str, Any], name: str
    ) -> tuple[dict[str, Any], str]:
        limit = self._host.settings.solver_time_limit_s
        started = time.perf_counter()
        try:
            document = await self._host.in_pool(solve_scenario, scenario, name, limit)
            note = ""
        except NotImplementedError:
            # A solver still being written must not leave the fleet without a plan.
            document = await self._host.in_pool(solve_scenario, scenario, FALLBACK_SOLVER, limit)
            note = f"solver {name!r} is not implemented; used {FALLBACK_SOLVER!r}"
        self._host.metrics.observe_solve(time.perf_counter() - started)
        return document, note

    async def _replan_in_pool(
        self, built: Built, name: str, force: bool, targets: set[str] | None = None
    ) -> tuple[Replacement, str]:
        limit = self._host.settings.solver_time_limit_s
        # A forced solve is a full one (every app re-placed) with no margin.
        margin = 0.0 if force else built.margin
        current = None
        if built.previous_plan is not None:
            previous = None if force else built.previous_scenario
            current = in_force(built.scenario, previous, built.previous_plan)
        started = time.perf_counter()
        try:
            result = await self._host.in_pool(
                replan, built.scenario, current, name, limit, margin, force, built.stop, targets
            )
            note = ""
        except NotImplementedError:
            result = await self._host.in_pool(
                replan,
                built.scenario,
                current,
                FALLBACK_SOLVER,
                limit,
                margin,
                force,
                built.stop,
                targets,
            )
            note = f"solver {name!r} is not implemented; used {FALLBACK_SOLVER!r}"
        self._host.metrics.observe_solve(time.perf_counter() - started)
        return result, note

    async def _materialize(self, plan: solver.PlanDoc) -> None:
        """Extract (once per model and block range) the partitions the plan needs."""
        needed: dict[str, set[tuple[str, str]]] = {}
        for app in plan.apps:
            if app.segments and app.model is not None:
                needed.setdefault(app.model, set()).update((s.first, s.last) for s in app.segments)
        if not needed:
            return
        host = self._host
        jobs = await host.run_sync(missing_ranges, needed, host.artifacts)
        root = str(host.artifacts.root)
        for model_id, (path, shapes, ranges) in jobs.items():
            made = await host.in_pool(extract_ranges, path, shapes, ranges, root)
            for item in made:  # for replicas without this one's store
                await asyncio.to_thread(host.artifacts.share, item["sha256"])
            await host.run_sync(store_partitions, model_id, made)

    async def _announce(self, outcome: Outcome, committed: Committed) -> None:
        plan = outcome.plan
        summary = {
            "version": outcome.version,
            "in_force": outcome.in_force,
            "revision": outcome.revision,
            "status": plan.status.value if plan is not None else None,
            "objective": plan.objective if plan is not None else None,
            "solver": plan.solver if plan is not None else None,
            "decision": outcome.decision,
            "apps": [a.id for a in plan.apps] if plan is not None else [],
            "timings_ms": {k: round(v * 1000.0, 1) for k, v in outcome.timings.items()},
        }
        self._host.metrics.plan_versions.inc()
        if plan is not None and outcome.in_force:
            self._host.metrics.observe_plan(
                [(a.id, a.latency_ms.expected, a.latency_ms.worst) for a in plan.apps]
            )
        await self._host.announce(summary)
        if committed.revision is not None:
            await self._host.desired.start_rollout(
                committed.version, committed.revision, list(committed.devices), committed.staged
            )


class _Stages:
    """Times the stages of one solve, each also exported as `plan_<stage>`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._at = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps[stage] = now - self._at
        self._metrics.observe_step(f"plan_{stage}", now - self._at)
        self._at = now
