"""Strict numbers and strings at the API edge (api/types.py): each input issue #18 found
stored, or answered with a 500, is now a 422 naming the field, on every backend."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import DEVICE_SPECS, agent_auth, enroll

pytestmark = pytest.mark.anyio


async def _raw(
    client: httpx.AsyncClient, method: str, path: str, body: str, **headers: str
) -> httpx.Response:
    """The body as written: JSON with Infinity or a lone surrogate escape, which a JSON
    encoder would refuse to produce."""
    return await client.request(
        method, path, content=body.encode(), headers={"Content-Type": "application/json", **headers}
    )


def _field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    field: str = problem["errors"][0]["field"] if "errors" in problem else problem["field"]
    assert field in problem["detail"]
    return field


async def test_bad_strings_and_numbers_are_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    token = (await client.post("/v1/enrollment-tokens", json={})).json()["token"]
    good: dict[str, Any] = {
        "token": token,
        "name": "cam-2",
        "data_plane_url": "http://cam-2:9000",
        **DEVICE_SPECS["edge-1"],
    }
    enroll_body = json.dumps(good)[:-1]
    no_auth = {"Authorization": ""}
    cases: list[tuple[str, str, str, str, dict[str, str]]] = [
        ("POST", "/v1/api-keys", '{"name": "a\\u0000b"}', "body.name", {}),
        ("POST", "/v1/api-keys", '{"name": "a\\ud800b"}', "body.name", {}),
        (
            "POST",
            "/v1/agents/enroll",
            enroll_body + ', "labels": {"x": "\\ud800"}}',
            "body.labels.x",
            no_auth,
        ),
        (
            "POST",
            "/v1/agents/enroll",
            enroll_body + ', "gflops": Infinity}',
            "body.gflops",
            no_auth,
        ),
        ("POST", "/v1/agents/enroll", enroll_body + ', "gflops": NaN}', "body.gflops", no_auth),
        (
            "POST",
            "/v1/agents/enroll",
            enroll_body + ', "memory_mb": 1e308}',
            "body.memory_mb",
            no_auth,
        ),
        ("PUT", "/v1/settings/placement", '{"energy": "Infinity"}', "body.energy", {}),
        ("PUT", "/v1/settings/placement", '{"hysteresis": 1e308}', "body.hysteresis", {}),
        (
            "POST",
            "/v1/links",
            '{"a": "x", "b": "y", "mbps": Infinity, "rtt_ms": 1}',
            "body.mbps",
            {},
        ),
    ]
    labels = json.dumps({f"k{i}": "v" for i in range(65)})
    cases.append(
        (
            "POST",
            "/v1/agents/enroll",
            enroll_body + f', "labels": {labels}}}',
            "body.labels",
            no_auth,
        )
    )
    for method, path, body, field, headers in cases:
        r = await _raw(client, method, path, body, **headers)
        assert _field(r).startswith(field), (path, body, r.text)

    cam = await enroll(client, "cam-1")
    beat = f"/v1/agents/{cam['device_id']}/heartbeat"
    partitions = json.dumps({f"d/m/{i}-{i}": True for i in range(257)})
    metric = {
        "requests": 1,
        "compute_ms": {"bounds_ms": [1], "counts": [1, 0], "count": 1, "sum_ms": 1},
    }
    metrics = json.dumps({f"d/m/{i}-{i}": metric for i in range(257)})
    for body, field in [
        ('{"utilization": Infinity}', "body.utilization"),
        ('{"links": [{"peer": "edge-1", "mbps": Infinity, "rtt_ms": 1}]}', "body.links[0].mbps"),
        ('{"links": [{"peer": "edge-1", "mbps": 5, "rtt_ms": 1e308}]}', "body.links[0].rtt_ms"),
        ('{"partitions": {"\\ud800": true}}', "body.partitions"),
        ('{"partitions": {"a\\u0000": true}}', "body.partitions"),
        (f'{{"partitions": {partitions}}}', "body.partitions"),
        (f'{{"metrics": {metrics}}}', "body.metrics"),
        ('{"desired_version": 99999999999999999999}', "body.desired_version"),
    ]:
        r = await _raw(client, "POST", beat, body, **agent_auth(cam))
        assert _field(r).startswith(field), (body, r.text)

    # Path parameters: never a 500 from the database.
    for method, path in [
        ("GET", "/v1/models/a%00b"),
        ("GET", "/v1/models/a%ED%A0%80b"),
        ("GET", "/v1/deployments/a%00b"),
        ("GET", "/v1/cascades/a%00b"),
        ("DELETE", "/v1/links/99999999999999"),
        ("DELETE", "/v1/api-keys/0"),
        ("GET", "/v1/agents/cam-1/desired-state?wait_s=inf"),
    ]:
        headers = agent_auth(cam) if "/agents/" in path else {}
        r = await client.request(method, path, headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert r.headers["content-type"] == "application/problem+json"

    # Nothing bad was stored: every read still answers.
    for path in ["/v1/devices", "/v1/api-keys", "/v1/settings/placement", "/v1/links"]:
        assert (await client.get(path)).status_code == 200, path


async def test_a_partial_battery_merges_or_is_422(client: httpx.AsyncClient) -> None:
    await enroll(client, "cam-1")  # battery 60 Wh, min 20 %
    await enroll(client, "edge-1")  # no battery
    r = await client.patch("/v1/devices/cam-1", json={"battery": {"capacity_wh": 5}})
    assert r.status_code == 200, r.text
    assert r.json()["battery"]["capacity_wh"] == 5 and r.json()["battery"]["min_pct"] == 20
    r = await client.patch("/v1/devices/cam-1", json={"battery": {"min_pct": 35}})
    assert r.status_code == 200, r.text
    assert r.json()["battery"]["capacity_wh"] == 5 and r.json()["battery"]["min_pct"] == 35
    r = await client.patch("/v1/devices/edge-1", json={"battery": {"min_pct": 35}})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("battery.capacity_wh")
    r = await client.patch("/v1/devices/cam-1", json={"battery": None})
    assert r.status_code == 200 and r.json()["battery"] is None


async def test_timestamps_carry_their_offset(client: httpx.AsyncClient) -> None:
    await enroll(client, "cam-1")
    stamps = [
        (await client.get("/v1/devices/cam-1")).json()["created_at"],
        (await client.post("/v1/enrollment-tokens", json={})).json()["expires_at"],
        (await client.get("/v1/audit")).json()[0]["at"],
        (await client.get("/v1/api-keys")).json()[0]["created_at"],
    ]
    for stamp in stamps:
        assert stamp.endswith(("Z", "+00:00")), stamp
