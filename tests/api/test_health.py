"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from orchestrator.triggers import Trigger
from tests.api.conftest import Backend, beat, enroll, make_app, serve

pytestmark = pytest.mark.anyio


async def test_health_ready_metrics_openapi(client: httpx.AsyncClient) -> None:
    anonymous = {"Authorization": ""}
    assert (await client.get("/healthz", headers=anonymous)).json() == {"status": "ok"}
    ready = await client.get("/readyz", headers=anonymous)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "live_state": True}
    agent = await enroll(client, "edge-1")
    await beat(client, agent)
    text = (await client.get("/metrics", headers=anonymous)).text
    assert "continuum_heartbeats_total 1.0" in text
    assert 'route="/v1/agents/{device_id}/heartbeat"' in text
    assert "continuum_solve_seconds_bucket" in text
    spec = (await client.get("/openapi.json")).json()
    paths = set(spec["paths"])
    assert {"/v1/agents/enroll", "/v1/plan/solve", "/v1/models", "/v1/scenario"} <= paths
    assert "multipart/form-data" in spec["paths"]["/v1/models"]["post"]["requestBody"]["content"]


async def test_a_ticks_triggers_recorded_together_are_what_one_at_a_time_records(
    backend: Backend, pool: ProcessPoolExecutor
) -> None:
    """The reconcile leader records a tick's triggers in one transaction
    (`ControlPlane.record_triggers`): the audit log and the event stream hold the same as
    when each is recorded on its own."""
    app = make_app(backend, pool)
    fired = [Trigger("device-joined", f"sim-{k}", f"device sim-{k} joined", 1000.0 + k)
             for k in range(40)]  # fmt: skip
    async with serve(app) as client:
        cp = app.state.control_plane
        async with cp.events.subscribe() as queue:
            await cp.record_triggers(fired[:20])
            for t in fired[20:]:
                await cp.record_trigger(t.kind, t.target, t.reason, t.observed_at)
            events: list[dict[str, Any]] = []
            while len(events) < len(fired):
                message = await asyncio.wait_for(queue.get(), 10.0)
                if message["type"] == "trigger":
                    events.append(message["data"])
        audit = (await client.get("/v1/audit", params={"limit": 1000})).json()
    expected = [{"kind": t.kind, "target": t.target, "reason": t.reason,
                 "observed_at": t.observed_at} for t in fired]  # fmt: skip
    assert events == expected
    recorded = [
        {"kind": e["action"].removeprefix("trigger."), "target": e["target"],
         "reason": e["reason"], "observed_at": e["detail"]["observed_at"]}
        for e in reversed(audit) if e["action"].startswith("trigger.")
    ]  # fmt: skip
    assert recorded == expected
    assert {e["actor"] for e in audit if e["action"].startswith("trigger.")} == {"loop"}
