"""Roles on operator keys: a viewer reads and is refused every write (403 problem+json);
an operator changes the fleet but not the operator keys; admin does both."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import enroll
from tests.api.test_auth import OPERATOR_ENDPOINTS

pytestmark = pytest.mark.anyio


async def _key(client: httpx.AsyncClient, name: str, role: str) -> dict[str, str]:
    made = await client.post("/v1/api-keys", json={"name": name, "role": role})
    assert made.status_code == 201, made.text
    assert made.json()["role"] == role
    return {"Authorization": f"Bearer {made.json()['token']}"}


async def test_a_viewer_reads_and_is_refused_every_write(client: httpx.AsyncClient) -> None:
    await enroll(client, "cam-1")
    viewer = await _key(client, "wall-screen", "viewer")
    devices = await client.get("/v1/devices", headers=viewer)
    assert devices.status_code == 200
    assert [d["id"] for d in devices.json()] == ["cam-1"]
    writes = [(m, p) for m, p in OPERATOR_ENDPOINTS if m != "GET" and "/agents/" not in p]
    assert len(writes) > 15
    for method, path in writes:
        response = await client.request(method, path, headers=viewer, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "viewer role" in response.json()["detail"]
    # Nothing was changed by the refused cordon.
    assert (await client.get("/v1/devices/cam-1")).json()["state"] == "active"
    # A viewer may not read a deployment's data-plane secret either.
    secret = await client.get("/v1/deployments/d/token", headers=viewer)
    assert secret.status_code == 403


async def test_an_operator_changes_the_fleet_not_the_keys(client: httpx.AsyncClient) -> None:
    await enroll(client, "cam-1")
    operator = await _key(client, "ops", "operator")
    cordoned = await client.post("/v1/devices/cam-1/cordon", headers=operator)
    assert cordoned.status_code == 200, cordoned.text
    assert cordoned.json()["state"] == "cordoned"
    refused = await client.post("/v1/api-keys", json={"name": "x"}, headers=operator)
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]
    assert (await client.get("/v1/api-keys", headers=operator)).status_code == 403
    keys = (await client.get("/v1/api-keys")).json()
    assert {(k["name"], k["role"]) for k in keys} == {("admin", "admin"), ("ops", "operator")}


async def test_an_unknown_role_is_refused_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/api-keys", json={"name": "x", "role": "root"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.role:")
