"""Deployments (what operators ask to run), their data-plane tokens, and the fleet-wide
placement settings. Every change is audited and asks the planner for a re-solve."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from orchestrator import audit, deployments
from orchestrator.services.context import Context


class DeploymentsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def create(self, actor: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The new deployment's view, with its data-plane token (shown here once)."""
        ctx = self._ctx
        dep = await ctx.run_sync(deployments.create_deployment, actor, spec)
        await ctx.events.publish("deployment", {"deployment": dep.id, "change": "created"})
        await ctx.record_trigger(
            "deployment-created",
            f"deployment:{dep.id}",
            f"deployment {dep.id} created by {actor}",
            time.time(),
            replan=True,
        )
        view = await self.view(dep.id)
        return {**view, deployments.TOKEN_KEY: dep.spec[deployments.TOKEN_KEY]}

    async def views(self) -> list[dict[str, Any]]:
        """Every deployment with its status, why, its entry in the plan in force, and its
        predicted latency beside the one its source measures."""
        beats = await self._ctx.live.heartbeats()
        return [with_latency(v, beats) for v in await self._ctx.run_sync(deployments.views)]

    async def view(self, name: str) -> dict[str, Any]:
        (view,) = await self._ctx.run_sync(deployments.views, name)
        return with_latency(view, await self._ctx.live.heartbeats())

    async def delete(self, actor: str, name: str) -> None:
        ctx = self._ctx
        await ctx.run_sync(deployments.delete_deployment, actor, name)
        ctx.invalidate_desired()
        await ctx.events.publish("deployment", {"deployment": name, "change": "deleted"})
        await ctx.record_trigger(
            "deployment-deleted",
            f"deployment:{name}",
            f"deployment {name} deleted by {actor}",
            time.time(),
            replan=True,
        )

    async def token(self, actor: str, name: str) -> str:
        """The deployment's data-plane token (operators only; each read is audited)."""

        def read(session: Session) -> str:
            dep = deployments.get_deployment(session, name)
            audit.record(session, actor, "deployment.token_read", f"deployment:{name}")
            return str(dep.spec[deployments.TOKEN_KEY])

        return await self._ctx.run_sync(read)

    # -- placement settings ------------------------------------------------------------------
    async def placement(self) -> dict[str, float]:
        """Objective weights, battery horizon, utilization cap and hysteresis margin."""

        def read(session: Session) -> dict[str, float]:
            return deployments.placement_dict(deployments.placement_settings(session))

        return await self._ctx.run_sync(read)

    async def update_placement(self, actor: str, values: dict[str, float]) -> dict[str, float]:
        def write(session: Session) -> dict[str, float]:
            row = deployments.update_placement_settings(session, actor, values)
            return deployments.placement_dict(row)

        settings = await self._ctx.run_sync(write)
        await self._ctx.request_replan(f"placement settings changed by {actor}")
        return settings


def with_latency(view: dict[str, Any], beats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The view with `latency`: the plan's predicted expected and worst-case latency, and
    the p50 and p95 its source agent measured end to end over its last requests, with the
    error of the prediction against the measured median."""
    placement = view.get("placement") or {}
    predicted = placement.get("latency_ms") or {}
    source = view["spec"].get("source")
    measured = ((beats.get(source) or {}).get("requests") or {}).get(view["name"]) or {}
    p50 = measured.get("p50_ms")
    expected = predicted.get("expected")
    error = (expected - p50) / p50 if expected is not None and p50 else None
    return {
        **view,
        "latency": {
            "predicted_expected_ms": expected,
            "predicted_worst_ms": predicted.get("worst"),
            "measured_p50_ms": p50,
            "measured_p95_ms": measured.get("p95_ms"),
            "measured_requests": measured.get("window", 0),
            "error": None if error is None else round(error, 4),
        },
    }
