"""The plan: the live scenario as the solver sees it, the plan in force with the state of
its rollout, and solves (what-if or for real)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import solver
from orchestrator.calls import RunSync
from orchestrator.carbon.plan import plan_carbon, report_json
from orchestrator.db.tables import PlanVersion, Rollout
from orchestrator.desired import compute
from orchestrator.desired.states import DesiredStates
from orchestrator.errors import Invalid, NotFound
from orchestrator.live.base import LiveState
from orchestrator.planner import Outcome, Planner


class Plans:
    def __init__(
        self, planner: Planner, desired: DesiredStates, live: LiveState, run_sync: RunSync
    ) -> None:
        self._planner = planner
        self._desired = desired
        self._live = live
        self._run_sync = run_sync

    async def scenario(self) -> dict[str, Any]:
        """The live state as a scenario-v1 document: exactly what the solver is given."""
        built = await self._planner.build()
        return built.scenario

    async def solve(self, actor: str, solver_name: str | None, dry_run: bool) -> dict[str, Any]:
        """Solve now (`dry_run`: a what-if that changes nothing). The answer's `plan` is
        the plan document."""
        if solver_name is not None:
            known = list(solver.solvers())
            if solver_name not in known:
                raise Invalid(
                    f"solver: unknown solver {solver_name!r}; choose one of {', '.join(known)}",
                    field="solver",
                )
        if dry_run:
            outcome = await self._planner.solve(f"what-if by {actor}", solver_name, dry_run=True)
            return _answer(outcome)
        await self._planner.request(
            f"solve requested by {actor}", solver=solver_name, wait=True, force=True
        )
        if self._planner.last_error is not None:
            raise RuntimeError(f"the solve failed: {self._planner.last_error}")
        last = self._planner.last
        if last is None:  # pragma: no cover - a served request always leaves an outcome
            raise RuntimeError("the solve produced nothing")
        return _answer(last)

    async def view(self) -> dict[str, Any]:
        """The plan in force (the contract's plan format) and the state of its rollout."""
        row, rollout = await self._run_sync(_in_force_and_rollout)
        cache = await self._desired.current()
        if row is None:
            raise NotFound("no plan is in force yet: create a deployment on an alive device")
        revision, states = cache.version or 0, cache.states
        beats = await self._live.heartbeats()
        agents: dict[str, Any] = {}
        for device_id, state in sorted(states.items()):
            keys = compute.hosted_keys(state)
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
            "live_version": self._desired.live_revision,
            "rollout": {
                "state": rollout.state if rollout is not None else "live",
                "started_at": rollout.started_at.isoformat() if rollout is not None else None,
                "complete": done,
                "agents": agents,
            },
        }

    async def carbon(self) -> dict[str, Any]:
        """The plan in force's carbon (docs/carbon.md), on the scenario it was solved from."""
        row, _ = await self._run_sync(_in_force_and_rollout)
        if row is None or row.scenario is None:
            raise NotFound("no plan is in force yet: create a deployment on an alive device")
        report = await asyncio.to_thread(plan_carbon, row.scenario, row.plan)
        return {"version": row.version, **report_json(report)}


def _answer(outcome: Outcome) -> dict[str, Any]:
    return {
        "version": outcome.version,
        "in_force": outcome.in_force,
        "note": outcome.note,
        "waiting": outcome.waiting,
        "plan": outcome.document,
    }


def _in_force_and_rollout(session: Session) -> tuple[PlanVersion | None, Rollout | None]:
    row = compute.in_force(session)
    if row is None:
        return None, None
    rollout = session.scalar(
        select(Rollout).where(Rollout.plan_version == row.version).order_by(Rollout.id.desc())
    )
    return row, rollout
