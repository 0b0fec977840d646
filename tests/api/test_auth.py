"""Who may call what: 401 without a (valid) token, 403 with another agent's token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from orchestrator.db.engine import make_engine, session_factory
from orchestrator.db.tables import EnrollmentToken
from tests.api.conftest import ADMIN, Backend, agent_auth, beat, enroll

pytestmark = pytest.mark.anyio

OPERATOR_ENDPOINTS = [
    ("POST", "/v1/enrollment-tokens"),
    ("GET", "/v1/enrollment-tokens"),
    ("DELETE", "/v1/enrollment-tokens/1"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/1"),
    ("GET", "/v1/devices"),
    ("GET", "/v1/devices/cam-1"),
    ("PATCH", "/v1/devices/cam-1"),
    ("POST", "/v1/devices/cam-1/cordon"),
    ("POST", "/v1/devices/cam-1/drain"),
    ("POST", "/v1/devices/cam-1/uncordon"),
    ("DELETE", "/v1/devices/cam-1"),
    ("POST", "/v1/links"),
    ("GET", "/v1/links"),
    ("DELETE", "/v1/links/1"),
    ("POST", "/v1/models"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/cnn"),
    ("DELETE", "/v1/models/cnn"),
    ("POST", "/v1/models/cnn/variants"),
    ("POST", "/v1/models/cnn/exits"),
    ("POST", "/v1/models/cnn/calibrate"),
    ("POST", "/v1/cascades"),
    ("GET", "/v1/cascades"),
    ("GET", "/v1/cascades/c"),
    ("DELETE", "/v1/cascades/c"),
    ("POST", "/v1/deployments"),
    ("GET", "/v1/deployments"),
    ("GET", "/v1/deployments/d"),
    ("DELETE", "/v1/deployments/d"),
    ("GET", "/v1/settings/placement"),
    ("PUT", "/v1/settings/placement"),
    ("GET", "/v1/scenario"),
    ("GET", "/v1/plan"),
    ("POST", "/v1/plan/solve"),
    ("GET", "/v1/plans"),
    ("GET", "/v1/plans/1/scenario"),
    ("GET", "/v1/events"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/artifacts/" + "0" * 64),
    ("POST", "/v1/agents/cam-1/heartbeat"),
    ("GET", "/v1/agents/cam-1/desired-state"),
]


async def test_every_protected_endpoint_needs_a_token(client: httpx.AsyncClient) -> None:
    for method, path in OPERATOR_ENDPOINTS:
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer not-a-real-token"}):
            r = await client.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == 401
            assert r.headers["www-authenticate"] == "Bearer"


async def test_agent_tokens_act_only_for_their_device(client: httpx.AsyncClient) -> None:
    cam = await enroll(client, "cam-1")
    edge = await enroll(client, "edge-1")
    await beat(client, cam)
    for path in ("/v1/agents/edge-1/desired-state",):
        r = await client.get(path, headers=agent_auth(cam))
        assert r.status_code == 403
        assert "cam-1" in r.json()["detail"]
    r = await client.post("/v1/agents/edge-1/heartbeat", json={}, headers=agent_auth(cam))
    assert r.status_code == 403
    # An agent token is not an operator token.
    r = await client.get("/v1/devices", headers=agent_auth(edge))
    assert r.status_code == 401
    # But agents may download artifacts (404 here: no such artifact, after auth passed).
    r = await client.get("/v1/artifacts/" + "a" * 64, headers=agent_auth(edge))
    assert r.status_code == 404


async def test_api_keys_can_be_created_used_and_revoked(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/api-keys", json={"name": "ci"})
    assert r.status_code == 201
    key = r.json()
    mine = {"Authorization": f"Bearer {key['token']}"}
    assert (await client.get("/v1/devices", headers=mine)).status_code == 200
    listed = (await client.get("/v1/api-keys")).json()
    assert {k["name"] for k in listed} >= {"admin", "ci"}
    assert all("token" not in k for k in listed)
    assert (await client.delete(f"/v1/api-keys/{key['id']}")).status_code == 204
    assert (await client.get("/v1/devices", headers=mine)).status_code == 401
    assert (await client.delete("/v1/api-keys/99999")).status_code == 404
    audit = (await client.get("/v1/audit")).json()
    assert {"api_key.created", "api_key.revoked"} <= {e["action"] for e in audit}


async def test_enrollment_tokens_expire_and_can_be_single_use(
    client: httpx.AsyncClient, backend: Backend
) -> None:
    single = (await client.post("/v1/enrollment-tokens", json={"single_use": True})).json()
    body = {
        "token": single["token"],
        "name": "cam-9",
        "tier": "device",
        "gflops": 5,
        "memory_mb": 100,
        "power_w": {"idle": 1, "busy": 2},
        "data_plane_url": "http://cam-9:9000",
    }
    assert (await client.post("/v1/agents/enroll", json=body)).status_code == 201
    again = await client.post("/v1/agents/enroll", json={**body, "name": "cam-10"})
    assert again.status_code == 401
    assert "already used" in again.json()["detail"]

    reusable = (await client.post("/v1/enrollment-tokens", json={})).json()
    # Age the token in the database, as time would.
    engine = make_engine(backend.settings)
    try:
        with session_factory(engine).begin() as session:
            session.execute(
                update(EnrollmentToken)
                .where(EnrollmentToken.id == reusable["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    late = await client.post(
        "/v1/agents/enroll", json={**body, "name": "cam-11", "token": reusable["token"]}
    )
    assert late.status_code == 401
    assert "expired" in late.json()["detail"]
    listed = (await client.get("/v1/enrollment-tokens")).json()
    assert [t["uses"] for t in listed] == [1, 0]
    assert (await client.delete(f"/v1/enrollment-tokens/{reusable['id']}")).status_code == 204
    assert (await client.delete(f"/v1/enrollment-tokens/{reusable['id']}")).status_code == 404


async def test_the_admin_token_is_the_configured_one(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/devices", headers={"Authorization": f"Bearer {ADMIN}x"})
    assert r.status_code == 401
    assert (await client.get("/v1/devices")).status_code == 200
