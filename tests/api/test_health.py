"""Health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import beat, enroll

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
