"""Enrollment cannot take a device over: re-enrolling needs the device's own agent token or
an operator's re-key, and the data-plane URL is http(s) to a host (issue #18)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import agent_auth, beat, enroll, try_enroll

pytestmark = pytest.mark.anyio


async def test_an_enrollment_token_alone_cannot_take_a_device_over(
    client: httpx.AsyncClient,
) -> None:
    owner = await enroll(client, "edge-1")
    await beat(client, owner)
    attack = await try_enroll(
        client, "edge-1", gflops=9999, data_plane_url="http://attacker.example:9000"
    )
    assert attack.status_code == 409, attack.text
    assert attack.headers["content-type"] == "application/problem+json"
    problem = attack.json()
    assert "'edge-1'" in problem["detail"] and problem["field"] == "name"
    # Nothing changed: the owner's token still works, its figures are intact.
    await beat(client, owner)
    device = (await client.get("/v1/devices/edge-1")).json()
    assert device["gflops"] == 200 and device["data_plane_url"] == "http://edge-1.local:9000"
    # Another device's token is not this device's credential either.
    other = await enroll(client, "cam-1")
    r = await try_enroll(client, "edge-1", agent_token=other["agent_token"])
    assert r.status_code == 409, r.text


async def test_an_operator_rekey_allows_exactly_one_reenrollment(
    client: httpx.AsyncClient,
) -> None:
    owner = await enroll(client, "edge-1")
    r = await client.post("/v1/devices/edge-1/rekey")
    assert r.status_code == 200, r.text
    assert r.json()["rekey_pending"] is True
    await beat(client, owner)  # the current token works until the re-enrollment
    replaced = await enroll(client, "edge-1", data_plane_url="http://edge-1.new:9000")
    r = await client.post("/v1/agents/edge-1/heartbeat", json={}, headers=agent_auth(owner))
    assert r.status_code == 401
    await beat(client, replaced)
    device = (await client.get("/v1/devices/edge-1")).json()
    assert device["rekey_pending"] is False
    assert device["data_plane_url"] == "http://edge-1.new:9000"
    assert (await try_enroll(client, "edge-1")).status_code == 409  # one use only
    actions = [e["action"] for e in (await client.get("/v1/audit")).json()]
    assert "device.rekey_allowed" in actions
    # Only operators re-key.
    r = await client.post("/v1/devices/edge-1/rekey", headers=agent_auth(replaced))
    assert r.status_code == 401
    assert (await client.post("/v1/devices/nope/rekey")).status_code == 404


async def test_a_data_plane_url_is_http_or_https_to_a_host(client: httpx.AsyncClient) -> None:
    for url in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "ftp://edge-1:21",
        "http://",
        "http:///nohost",
        "edge-1:9000",
        "http://edge-1:99999",
        "http://edge 1:9000",
        "http://edge-1\x00:9000",
    ]:
        r = await try_enroll(client, "edge-1", data_plane_url=url)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["errors"][0]["field"] == "body.data_plane_url", url
    r = await try_enroll(client, "edge-1", data_plane_url="https://[::1]:9443")
    assert r.status_code == 201, r.text
