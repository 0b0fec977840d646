"""The plan history (`GET /v1/plans`) and a version's scenario for replay."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import fleet_with_model

pytestmark = pytest.mark.anyio


async def test_history_lists_versions_with_their_totals_and_replays(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    assert (await client.get("/v1/plans")).json() == []
    await fleet_with_model(client, cnn_bytes)
    made = await client.post(
        "/v1/deployments",
        json={"name": "vision", "model": "cnn", "source": "cam-1", "rate_rps": 2, "slo_ms": 500},
    )
    assert made.status_code == 201, made.text
    assert (await client.post("/v1/plan/solve", json={})).status_code == 200
    history = (await client.get("/v1/plans")).json()
    newest = history[0]
    assert newest["in_force"] and newest["applied"] and newest["status"] in ("optimal", "feasible")
    plan = (await client.get("/v1/plan")).json()
    (app,) = plan["plan"]["apps"]
    # The totals are the plan's own figures at the deployment's rate.
    assert newest["totals"]["energy_w"] == pytest.approx(app["energy_j"] * 2)
    assert newest["totals"]["carbon_gph"] == pytest.approx(app["carbon_g"] * 2 * 3600)
    scenario = (await client.get(f"/v1/plans/{newest['version']}/scenario")).json()
    assert scenario["version"] == 1 and [a["id"] for a in scenario["apps"]] == ["vision"]
    missing = await client.get("/v1/plans/999/scenario")
    assert missing.status_code == 404 and "no plan version 999" in missing.json()["detail"]
    bad = await client.get("/v1/plans", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("query.limit")
