"""Enrollment, heartbeats, devices and links through HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import agent_auth, beat, enroll

pytestmark = pytest.mark.anyio


async def test_enroll_heartbeat_and_device_lifecycle(client: httpx.AsyncClient) -> None:
    cam = await enroll(client, "cam-1", labels={"line": "3"})
    assert cam["device_id"] == "cam-1"
    assert cam["agent_token"].startswith("cnt_agent_")
    before = (await client.get("/v1/devices/cam-1")).json()
    assert before["alive"] is False
    ack = await beat(
        client,
        cam,
        battery_pct=55,
        utilization=0.2,
        free_memory_mb=100,
        links=[{"peer": "edge-1", "mbps": 30, "rtt_ms": 7}],
        partitions={"x/y/0-1": True},
    )
    assert ack["interval_s"] == 60
    device = (await client.get("/v1/devices/cam-1")).json()
    assert device["alive"] is True
    assert device["battery"]["level_pct"] == 55
    assert device["labels"] == {"line": "3"}
    assert device["last_heartbeat"]["partitions"] == {"x/y/0-1": True}

    r = await client.patch(
        "/v1/devices/cam-1",
        json={"labels": {"line": "4"}, "grid_gco2_per_kwh": 300, "power_w": {"idle": 2, "busy": 5}},
    )
    assert r.status_code == 200, r.text
    assert r.json()["labels"] == {"line": "4"}
    assert r.json()["power_w"] == {"idle": 2, "busy": 5}
    assert r.json()["grid_gco2_per_kwh"] == 300

    for action, state in (("cordon", "cordoned"), ("drain", "draining"), ("uncordon", "active")):
        r = await client.post(f"/v1/devices/cam-1/{action}")
        assert r.status_code == 200
        assert r.json()["state"] == state
    assert [d["id"] for d in (await client.get("/v1/devices")).json()] == ["cam-1"]

    assert (await client.delete("/v1/devices/cam-1")).status_code == 204
    assert (await client.get("/v1/devices/cam-1")).status_code == 404
    # The deleted device's token is dead at once.
    r = await client.post("/v1/agents/cam-1/heartbeat", json={}, headers=agent_auth(cam))
    assert r.status_code == 401
    actions = {e["action"] for e in (await client.get("/v1/audit")).json()}
    assert {"device.enrolled", "device.updated", "device.cordoned", "device.deleted"} <= actions


async def test_reenrolling_with_the_own_token_rotates_it(client: httpx.AsyncClient) -> None:
    first = await enroll(client, "cam-1")
    second = await enroll(client, "cam-1", gflops=9, agent_token=first["agent_token"])
    assert first["agent_token"] != second["agent_token"]
    r = await client.post("/v1/agents/cam-1/heartbeat", json={}, headers=agent_auth(first))
    assert r.status_code == 401
    await beat(client, second)
    assert (await client.get("/v1/devices/cam-1")).json()["gflops"] == 9


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v1/devices/nope"),
        ("PATCH", "/v1/devices/nope"),
        ("POST", "/v1/devices/nope/cordon"),
        ("POST", "/v1/devices/nope/drain"),
        ("DELETE", "/v1/devices/nope"),
        ("DELETE", "/v1/links/424242"),
        ("GET", "/v1/models/nope"),
        ("DELETE", "/v1/models/nope"),
        ("GET", "/v1/cascades/nope"),
        ("DELETE", "/v1/cascades/nope"),
        ("GET", "/v1/deployments/nope"),
        ("DELETE", "/v1/deployments/nope"),
        ("GET", "/v1/plan"),
    ]:
        body: dict[str, object] | None = {} if method == "PATCH" else None
        r = await client.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"]


async def test_invalid_bodies_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    token = (await client.post("/v1/enrollment-tokens", json={})).json()["token"]
    good = {
        "token": token,
        "name": "cam-1",
        "tier": "device",
        "gflops": 5,
        "memory_mb": 100,
        "power_w": {"idle": 1, "busy": 2},
        "data_plane_url": "http://cam-1:9000",
    }
    cases = [
        ("/v1/agents/enroll", {**good, "gflops": -1}, "body.gflops"),
        ("/v1/agents/enroll", {**good, "tier": "fog"}, "body.tier"),
        ("/v1/agents/enroll", {**good, "name": "../etc"}, "body.name"),
        ("/v1/agents/enroll", {**good, "power_w": {"idle": 3, "busy": 2}}, "body.power_w"),
        ("/v1/links", {"a": "x", "b": "y", "mbps": 0, "rtt_ms": 1}, "body.mbps"),
        ("/v1/enrollment-tokens", {"ttl_s": -5}, "body.ttl_s"),
        ("/v1/plan/solve", {"dry_run": "maybe"}, "body.dry_run"),
        ("/v1/deployments", {"name": "d", "source": "s", "rate_rps": 1}, "body"),
    ]
    for path, body, field in cases:
        r = await client.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        problem = r.json()
        assert problem["detail"].startswith(field), (field, problem)
        assert problem["errors"][0]["field"].startswith(field)
    r = await client.get("/v1/artifacts/not-a-sha")
    assert r.status_code == 422
    assert r.json()["detail"].startswith("path.sha256")
    r = await client.get("/v1/devices/bad%20id")
    assert r.status_code == 422
    # Nothing was enrolled by the bad requests.
    assert (await client.get("/v1/devices")).json() == []


async def test_links_declared_and_measured_apart(client: httpx.AsyncClient) -> None:
    cam = await enroll(client, "cam-1")
    await enroll(client, "edge-1")
    r = await client.post(
        "/v1/links", json={"a": "edge-1", "b": "cam-1", "mbps": 40, "rtt_ms": 8, "j_per_mb": 0.6}
    )
    assert r.status_code == 201
    link = r.json()
    assert (link["a"], link["b"]) == ("cam-1", "edge-1")
    dup = await client.post("/v1/links", json={"a": "cam-1", "b": "edge-1", "mbps": 1, "rtt_ms": 1})
    assert dup.status_code == 409
    unknown = await client.post(
        "/v1/links", json={"a": "cam-1", "b": "ghost", "mbps": 1, "rtt_ms": 1}
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"].startswith("b:")
    await beat(client, cam, links=[{"peer": "edge-1", "mbps": 25, "rtt_ms": 9}])
    links = (await client.get("/v1/links")).json()
    assert [(d["a"], d["b"], d["mbps"]) for d in links["declared"]] == [("cam-1", "edge-1", 40)]
    assert [(m["a"], m["b"], m["mbps"]) for m in links["measured"]] == [("cam-1", "edge-1", 25)]
    assert (await client.delete(f"/v1/links/{link['id']}")).status_code == 204
    assert (await client.get("/v1/links")).json()["declared"] == []
