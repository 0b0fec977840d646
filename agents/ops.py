"""The agent's operations endpoints beside its data plane: health and readiness (open,
for probes), its status page and the emulation controls (behind the agent's own token or
the operator's status token: they reveal the fleet's layout, or fake its figures)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agents.problems import HopError, problem
from agents.state import ServingState

log = logging.getLogger(__name__)


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def add_ops_routes(app: FastAPI, state: ServingState) -> None:
    """`/healthz`, `/readyz`, `/v1/status` and `/v1/emulation` on the agent's app."""

    def _operator(request: Request) -> None:
        token = bearer(request)
        if not state.status_ok(token):
            raise HopError(
                401 if token is None else 403,
                "send this agent's token (its credentials.json) or the status token "
                "(CONTINUUM_AGENT_STATUS_TOKEN) as Authorization: Bearer",
            )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up and its event loop answers."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz() -> dict[str, Any] | JSONResponse:
        """Ready to serve what the control plane asked of it: enrolled, and every partition
        and stage of the desired state in force loaded."""
        if not state.device_id:
            return problem(503, "not enrolled yet")
        waiting = sorted(key for key, ready in state.readiness().items() if not ready)
        if waiting:
            return problem(503, f"still loading {len(waiting)}: {', '.join(waiting[:5])}")
        return {"status": "ready", "device_id": state.device_id, "desired_version": state.version}

    @app.post("/v1/emulation")
    async def emulation(request: Request) -> dict[str, Any]:
        """EMULATION ONLY, for demos and tests: set the emulated battery's level
        (`battery_pct`), plug it in or out (`charging`), and/or an emulated uplink
        (`uplink_mbps`; null: none) or one towards a peer, a degraded link
        (`peer_uplink_mbps`: {peer: Mbit/s, or null to clear}), and a round-trip delay
        added to every exchange with a peer (`peer_delay_ms`: {peer: ms, or null}). Answers only
        clients on this machine (loopback), and only on an agent whose battery or compute
        is emulated: a real device's figures cannot be faked. Needs the agent's token or
        the status token even from loopback: another user of this machine must not."""
        _operator(request)
        client = request.client.host if request.client is not None else ""
        if client not in ("127.0.0.1", "::1", "localhost"):
            raise HopError(403, "emulation controls answer loopback clients only")
        emulated = state.battery.emulated or state.emulate_gflops is not None
        if not emulated:
            raise HopError(403, "this agent emulates nothing (no --battery emulated:...)")
        try:
            body = await request.json()
        except ValueError:
            raise HopError(422, "send a JSON object") from None
        if not isinstance(body, dict) or set(body) - {
            "battery_pct", "charging", "uplink_mbps", "peer_uplink_mbps", "peer_delay_ms"
        }:  # fmt: skip
            raise HopError(
                422,
                "fields: battery_pct (0..100), charging (bool), uplink_mbps (> 0 or null), "
                "peer_uplink_mbps ({peer: > 0 or null}), peer_delay_ms ({peer: >= 0 or null})",
            )
        # Every field is checked before any is applied: a bad one changes nothing.
        apply: list[Callable[[], None]] = []
        if "battery_pct" in body:
            level = body["battery_pct"]
            setter = getattr(state.battery, "set_level", None)
            if not _finite(level) or not 0 <= level <= 100 or setter is None:
                raise HopError(422, "battery_pct: a number in 0..100 on an emulated battery")
            apply.append(lambda: setter(float(level)))
        if "charging" in body:
            plug = getattr(state.battery, "set_charging", None)
            if not isinstance(body["charging"], bool) or plug is None:
                raise HopError(422, "charging: true or false, on an emulated battery")
            apply.append(lambda: plug(body["charging"]))
        if "uplink_mbps" in body:
            mbps = body["uplink_mbps"]
            if mbps is not None and (not _finite(mbps) or mbps <= 0):
                raise HopError(422, "uplink_mbps: a number > 0, or null")
            uplink = None if mbps is None else float(mbps)
            apply.append(lambda: setattr(state, "uplink_mbps", uplink))
        if "peer_uplink_mbps" in body:
            uplinks = _per_peer(body["peer_uplink_mbps"], "peer_uplink_mbps", 0.0)
            apply.append(lambda: _merge(state.peer_uplink_mbps, uplinks))
        if "peer_delay_ms" in body:
            delays = _per_peer(body["peer_delay_ms"], "peer_delay_ms", None)
            apply.append(lambda: _merge(state.peer_delay_ms, delays))
        for step in apply:
            step()
        log.warning("EMULATION: battery %s%%, uplink %s Mbit/s", state.battery.level_pct(),
                    state.uplink_mbps)  # fmt: skip
        return {"emulated": True, "battery_pct": state.battery.level_pct(),
                "charging": state.battery.charging(), "uplink_mbps": state.uplink_mbps,
                "peer_uplink_mbps": dict(state.peer_uplink_mbps),
                "peer_delay_ms": dict(state.peer_delay_ms)}  # fmt: skip

    @app.get("/v1/status")
    async def status(request: Request) -> dict[str, Any]:
        _operator(request)
        battery = state.battery.describe()
        return {
            "device_id": state.device_id or None,
            "emulated": {
                "battery": bool(battery.get("emulated")),
                "gflops": state.emulate_gflops,
                "uplink_mbps": state.uplink_mbps,
                "peer_uplink_mbps": dict(state.peer_uplink_mbps),
                "peer_delay_ms": dict(state.peer_delay_ms),
            },
            "battery": battery,
            "desired_version": state.version,
            "partitions": {
                key: {
                    "kind": lo.kind,
                    "deployment": lo.deployment,
                    "gflops": round(lo.gflops, 6),
                    "warmup_ms": round(lo.warmup_ms, 3),
                    "current": key in state.readiness(),
                }
                for key, lo in state.loaded.items()
            },
            "sources": sorted(state.sources),
            # Local fallback (docs/agent.md): next hops failing lately, answers it gave.
            "unreachable": [u.model_dump() for u in state.unreachable_report()],
            "degraded_answers": state.degraded_answers,
            "control_plane": state.control_plane,
            "discovery": state.discovery,
            "probes": state.probes,
            "metrics": {k: v.model_dump() for k, v in state.metrics.snapshot().items()},
            "uptime_s": round(time.time() - state.started_at, 1),
        }


def _per_peer(given: Any, name: str, above: float | None) -> dict[str, float | None]:
    """An emulated figure towards each peer named: a number (above `above`; None: at
    least 0) to set, or null to clear."""

    def valid(v: Any) -> bool:
        if v is None:
            return True
        if not _finite(v):
            return False
        return v > above if above is not None else v >= 0

    if not isinstance(given, dict) or not all(
        isinstance(peer, str) and valid(v) for peer, v in given.items()
    ):
        bound = f"> {above:g}" if above is not None else ">= 0"
        raise HopError(422, f"{name}: {{peer: a number {bound}, or null}}")
    return {peer: None if v is None else float(v) for peer, v in given.items()}


def _finite(v: Any) -> bool:
    """A JSON number that is a figure: not a boolean (an int to Python), not inf or NaN."""
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def _merge(figures: dict[str, float], given: dict[str, float | None]) -> None:
    for peer, value in given.items():
        if value is None:
            figures.pop(peer, None)
        else:
            figures[peer] = value
