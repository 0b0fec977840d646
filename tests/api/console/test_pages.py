"""The console's pages over a real control plane (PostgreSQL and Redis): login, every page
with a placed deployment, the forms' CSRF and role checks, and bad input that names the
field. The browser drives the same pages in test_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor

import httpx
import pytest

from tests.api.conftest import ADMIN, Backend, beat, enroll, fleet_with_model, make_app, serve

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.parametrize("backend", ["postgres+redis"], indirect=True),
]

PAGES = ["fleet", "topology", "deployments", "plans", "charts", "models"]


@pytest.fixture
async def client(backend: Backend, pool: ProcessPoolExecutor) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(make_app(backend, pool)) as c:
        yield c


async def _login(client: httpx.AsyncClient, token: str) -> str:
    """Log in through the form; the CSRF token of the session."""
    client.cookies.clear()
    response = await client.post("/console/login", data={"token": token})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/fleet"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    page = await client.get("/console/fleet")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def _placed(client: httpx.AsyncClient, cnn: bytes) -> None:
    agents = await fleet_with_model(client, cnn)
    made = await client.post(
        "/v1/deployments",
        json={"name": "vision", "model": "cnn", "source": "cam-1", "rate_rps": 2, "slo_ms": 500},
    )
    assert made.status_code == 201, made.text
    hopeless = {"name": "hopeless", "model": "cnn", "source": "cam-1", "rate_rps": 1,
                "slo_ms": 0.001}  # fmt: skip
    assert (await client.post("/v1/deployments", json=hopeless)).status_code == 201
    solved = await client.post("/v1/plan/solve", json={})
    assert solved.status_code == 200, solved.text
    for agent in agents.values():
        await beat(client, agent, battery_pct=75, utilization=0.2, free_memory_mb=100)


async def test_no_session_redirects_to_login(client: httpx.AsyncClient) -> None:
    client.headers.pop("Authorization")
    for page in PAGES:
        response = await client.get(f"/console/{page}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/console/login?next=/console/{page}"
    client.cookies.set("continuum_session", "1.x.y", path="/console")
    forged = await client.get("/console/fleet")
    assert forged.status_code == 303
    posted = await client.post("/console/devices/cam-1/cordon", data={"csrf": "x"})
    assert posted.status_code == 303  # to the login page: nothing done
    login = await client.get("/console/login")
    assert login.status_code == 200 and 'name="token"' in login.text


async def test_every_page_shows_the_fleet_and_its_plan(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    await _placed(client, cnn_bytes)
    await _login(client, client.headers["Authorization"].removeprefix("Bearer "))
    texts = {}
    for page in PAGES:
        response = await client.get(f"/console/{page}")
        assert response.status_code == 200, (page, response.text[:500])
        fragment = await client.get(f"/console/{page}?fragment=1")
        assert fragment.status_code == 200 and "<html" not in fragment.text
        texts[page] = response.text
    assert 'data-device="cam-1"' in texts["fleet"] and 'data-device="edge-1"' in texts["fleet"]
    assert "75.0%" in texts["fleet"]  # the battery level from the heartbeat
    assert "cam-1 – edge-1" in texts["topology"] and "<svg" in texts["topology"]
    row = re.search(r'data-deployment="vision" data-status="(\w+)" data-placement="([^"]*)"',
                    texts["deployments"])  # fmt: skip
    assert row is not None and row.group(1) == "placed" and "@" in row.group(2)
    # Set aside by the solver: its status, its reason, and the constraint's code.
    hopeless = texts["deployments"].split('data-deployment="hopeless"')[1].split("</tr>")[0]
    # No placement meets its SLO: it serves degraded (orchestrator/degrade.py), with why.
    assert 'data-status="degraded"' in hopeless and '<code class="code">slo</code>' in hopeless
    assert 'data-version="1"' in texts["plans"] and "scenario-v1" not in texts["plans"]
    assert "GFLOP per block" in texts["models"] and "<rect" in texts["models"]
    replay = await client.get("/console/plans/1/scenario.json")
    assert replay.status_code == 200
    assert replay.json()["version"] == 1 and [a["id"] for a in replay.json()["apps"]] == ["vision"]
    assert "attachment" in replay.headers["content-disposition"]
    diff = await client.get("/console/plans?a=1&b=1")
    assert diff.status_code == 200 and "v1 ↔ v1" in diff.text


async def test_long_lists_are_paged_filtered_and_counted(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    await _placed(client, cnn_bytes)
    await _login(client, client.headers["Authorization"].removeprefix("Bearer "))
    fleet = (await client.get("/console/fleet")).text
    assert re.search(r'data-counts="device">.*?<td class="num">1</td>', fleet)
    edge = await client.get("/console/fleet?tier=edge&fragment=1")
    assert 'data-device="edge-1"' in edge.text and 'data-device="cam-1"' not in edge.text
    second = (await client.get("/console/fleet?per_page=1&page=2")).text
    assert 'data-device="edge-1"' in second and 'data-device="cam-1"' not in second
    assert "devices 2–2 of 2" in second and "page 2 of 2" in second
    assert 'href="/console/fleet?per_page=1&amp;page=1" rel="prev"' in second
    assert "data-device=" not in (await client.get("/console/fleet?status=down")).text
    found = (await client.get("/console/fleet?q=CAM")).text
    assert 'data-device="cam-1"' in found and 'data-device="edge-1"' not in found
    deps = (await client.get("/console/deployments?status=degraded")).text
    assert 'data-deployment="hopeless"' in deps and 'data-deployment="vision"' not in deps
    assert 'data-count="placed"' in deps and 'data-count="degraded"' in deps
    topo = (await client.get("/console/topology?q=nothing-matches")).text
    assert "0 links · 0 devices drawn" in topo and "no links match" in topo


async def test_forms_validate_and_name_the_field(client: httpx.AsyncClient) -> None:
    client.headers.pop("Authorization")
    empty = await client.post("/console/login", data={"token": ""})
    assert empty.status_code == 422 and "token: paste an operator token" in empty.text
    wrong = await client.post("/console/login", data={"token": "cnt_key_nope"})
    assert wrong.status_code == 401 and "token: unknown or revoked" in wrong.text
    assert "set-cookie" not in wrong.headers
    csrf = await _login(client, ADMIN)
    bad = await client.get("/console/plans?a=x&b=2")
    assert bad.status_code == 422 and "a: give a plan version number" in bad.text
    missing = await client.get("/console/plans?a=5&b=6")
    assert missing.status_code == 422 and "no plan version 5" in missing.text
    for query, named in (("page=x", "page: a whole number"), ("per_page=0", "page: from 1"),
                         ("tier=moon", "tier: one of device, edge, cloud"),
                         ("status=lost", "status: one of alive")):  # fmt: skip
        listed = await client.get(f"/console/fleet?{query}")
        assert listed.status_code == 422 and named in listed.text, query
    bad_status = await client.get("/console/deployments?status=alive")
    assert bad_status.status_code == 422 and "status: one of placed" in bad_status.text
    hours = await client.get("/console/charts?hours=abc")
    assert hours.status_code == 200 and "hours: a number of hours" in hours.text
    unknown = await client.post("/console/devices/nope/cordon", data={"csrf": csrf})
    assert unknown.status_code == 404 and "device: no device 'nope'" in html.unescape(unknown.text)
    action = await client.post("/console/devices/nope/reboot", data={"csrf": csrf})
    assert action.status_code == 422 and "action: must be one of" in action.text
    # Nothing is changed by a GET.
    assert (await client.get("/console/devices/nope/cordon")).status_code == 405


async def test_csrf_and_roles_guard_every_change(client: httpx.AsyncClient) -> None:
    await enroll(client, "cam-1")
    viewer = await client.post("/v1/api-keys", json={"name": "wall", "role": "viewer"})
    viewer_token = viewer.json()["token"]
    csrf = await _login(client, ADMIN)
    forged = await client.post("/console/devices/cam-1/cordon", data={"csrf": "forged"})
    assert forged.status_code == 403 and "csrf" in forged.text
    assert (await client.get("/v1/devices/cam-1")).json()["state"] == "active"
    done = await client.post("/console/devices/cam-1/cordon", data={"csrf": csrf})
    assert done.status_code == 303
    assert (await client.get("/v1/devices/cam-1")).json()["state"] == "cordoned"
    # A viewer's page has no action buttons, and a crafted POST is refused.
    viewer_csrf = await _login(client, viewer_token)
    page = await client.get("/console/fleet")
    assert 'data-action="uncordon"' not in page.text and "Read-only" in page.text
    refused = await client.post("/console/devices/cam-1/uncordon", data={"csrf": viewer_csrf})
    assert refused.status_code == 403 and "viewer role" in refused.text
    assert (await client.get("/v1/devices/cam-1")).json()["state"] == "cordoned"
    # Revoking the key ends its session at once.
    keys = (await client.get("/v1/api-keys")).json()
    (key_id,) = [k["id"] for k in keys if k["name"] == "wall"]
    assert (await client.delete(f"/v1/api-keys/{key_id}")).status_code == 204
    assert (await client.get("/console/fleet")).status_code == 303
