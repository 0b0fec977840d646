"""The heartbeat fast path (`api/fastpath.py`) answers exactly as the FastAPI route it
stands in front of: the same acknowledgement for a good heartbeat, and for anything else
the route's own answer, reached with the body replayed.

Both are the real app's: the route is reached through the app the fast path stands in
front of (`app.fast_path.app`), with a counter on that inner app to tell which of the two
answered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from api.app import create_app
from api.fastpath import HeartbeatFastPath
from orchestrator.live.redis import RedisLiveState
from orchestrator.settings import Settings
from tests.api.conftest import ADMIN, Backend, agent_auth, enroll, make_app, serve
from tests.harness.faults import PrivateRedis
from tests.harness.processes import Launcher

pytestmark = pytest.mark.anyio


@dataclass
class Paths:
    app: httpx.AsyncClient  # the whole app: fast path first
    route: httpx.AsyncClient  # the app behind the fast path: FastAPI's routing
    fallbacks: list[str]  # the paths the fast path handed to the route
    fast: HeartbeatFastPath


def _fast_path(app: FastAPI) -> HeartbeatFastPath:
    node: Any = getattr(app, "fast_path", None)
    assert isinstance(node, HeartbeatFastPath), "no heartbeat fast path ahead of the app"
    return node


@pytest.fixture
async def paths(backend: Backend, pool: ProcessPoolExecutor) -> AsyncIterator[Paths]:
    app = make_app(backend, pool)
    async with serve(app) as client:
        assert (await client.get("/healthz")).status_code == 200  # builds the stack
        fast = _fast_path(app)
        inner, fallbacks = fast.app, []

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                fallbacks.append(scope["path"])
            await inner(scope, receive, send)

        fast.app = counted

        async def route_app(scope: Scope, receive: Receive, send: Send) -> None:
            scope["app"] = app  # as the app itself sets it for everything beneath it
            await inner(scope, receive, send)

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=route_app), base_url="http://control-plane"
        ) as route:
            yield Paths(client, route, fallbacks, fast)


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    return (
        response.status_code,
        response.headers["content-type"],
        json.loads(response.content) if response.content else None,
    )


async def _both(
    paths: Paths, device: str, body: bytes, headers: dict[str, str]
) -> tuple[tuple[int, str, Any], tuple[int, str, Any], bool]:
    """(the app's answer, the route's answer, the fast path answered by itself)."""
    url = f"/v1/agents/{device}/heartbeat"
    headers = {"Content-Type": "application/json", **headers}
    before = len(paths.fallbacks)
    via_app = await paths.app.post(url, content=body, headers=headers)
    fast = len(paths.fallbacks) == before
    via_route = await paths.route.post(url, content=body, headers=headers)
    return _answer(via_app), _answer(via_route), fast


async def test_a_good_heartbeat_is_acknowledged_alike_by_both(paths: Paths) -> None:
    cam = await enroll(paths.app, "cam-1")
    body = json.dumps({"battery_pct": 70.0, "utilization": 0.2}).encode()
    via_app, via_route, fast = await _both(paths, "cam-1", body, agent_auth(cam))
    assert fast, "a good heartbeat from a known token should not reach the route"
    assert via_app == via_route
    status, content_type, ack = via_app
    assert status == 200 and content_type == "application/json"
    assert set(ack) == {"desired_version", "interval_s", "live_version"}
    # And what the heartbeat said reached the control plane either way.
    device = (await paths.app.get("/v1/devices/cam-1")).json()
    assert device["alive"] and device["last_heartbeat"]["battery_pct"] == 70.0


async def test_the_acknowledgement_follows_a_new_revision(paths: Paths) -> None:
    # The fast path encodes its answer once per revision: a change must still show.
    cam = await enroll(paths.app, "cam-1")
    body = json.dumps({"battery_pct": 70.0}).encode()
    first, _, _ = await _both(paths, "cam-1", body, agent_auth(cam))
    revision, live = first[2]["desired_version"] + 3, (first[2]["live_version"] or 0) + 2
    # What another replica's rollout tells this one (`DesiredStates.on_event`).
    await paths.fast.cp.desired.on_event(
        "rollout", {"revision": revision, "state": "switching", "live_version": live}
    )

    via_app, via_route, fast = await _both(paths, "cam-1", body, agent_auth(cam))
    assert fast and via_app == via_route
    assert (via_app[2]["desired_version"], via_app[2]["live_version"]) == (revision, live)


@pytest.mark.parametrize(
    "case",
    ["no token", "unknown token", "another device's token", "bad body", "not json"],
)
async def test_what_the_fast_path_declines_gets_the_routes_answer(paths: Paths, case: str) -> None:
    cam = await enroll(paths.app, "cam-1")
    edge = await enroll(paths.app, "edge-1")
    body = json.dumps({"battery_pct": 50.0}).encode()
    headers = agent_auth(cam)
    if case == "no token":
        headers = {"Authorization": ""}  # over the admin token the app's client sends
    elif case == "unknown token":
        headers = {"Authorization": "Bearer cnt_agent_not-a-token-of-this-fleet"}
    elif case == "another device's token":
        headers = agent_auth(edge)
    elif case == "bad body":
        body = json.dumps({"battery_pct": 250.0, "desired_version": -1}).encode()
    else:
        body = b"{battery_pct: 5"
    via_app, via_route, fast = await _both(paths, "cam-1", body, headers)
    if case in ("no token", "unknown token"):
        # Refused ahead of both (api/limits.py authenticates before any body is read),
        # with the route's status.
        assert via_app[:2] == via_route[:2] == (401, "application/problem+json"), via_app
        assert via_app[2]["title"] == via_route[2]["title"]
        return
    assert not fast, f"{case}: the fast path should hand this to the route"
    assert via_app == via_route
    status, content_type, problem = via_app
    assert status in (401, 403, 422), via_app
    assert content_type == "application/problem+json"
    if case == "bad body":
        # The body reached the route whole: its errors name both fields.
        assert "battery_pct" in json.dumps(problem) and "desired_version" in json.dumps(problem)


async def test_redis_down_under_the_fast_path_is_the_error_handlers_503(
    tmp_path: Path, pool: ProcessPoolExecutor, processes: Launcher
) -> None:
    # The fast path stands ahead of Starlette's error middleware: a failure while it
    # serves a heartbeat must still get the app's answer (Redis unreachable: a 503 to
    # retry), not a bare 500 or a dropped connection.
    redis = PrivateRedis(processes, tmp_path / "redis.log")
    settings = Settings(
        data_dir=tmp_path / "data", redis_url=redis.url, admin_token=ADMIN, solver="ilp",
        heartbeat_interval_s=60, gc_freeze=False,
    )  # fmt: skip
    app = create_app(
        settings, live=RedisLiveState(redis.url, prefix="fastpath:"), executor=pool, migrate=True
    )
    async with serve(app) as client:
        cam = await enroll(client, "cam-1")
        fast = _fast_path(app)
        inner, fallbacks = fast.app, []

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            fallbacks.append(scope["path"])
            await inner(scope, receive, send)

        fast.app = counted
        # The app's exception goes on to the server after its answer, as it did behind
        # Starlette's error middleware: this client returns the answer instead of raising.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as agent:
            url, body = "/v1/agents/cam-1/heartbeat", {"battery_pct": 60.0}
            assert (await agent.post(url, json=body, headers=agent_auth(cam))).status_code == 200
            redis.proc.kill()
            r = await agent.post(url, json=body, headers=agent_auth(cam))
            assert fallbacks == [], "the fast path should have served both heartbeats"
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "1"
            assert "unreachable" in r.json()["detail"]
            redis.proc.start()  # for the app's shutdown
            redis.wait()
            assert (await agent.post(url, json=body, headers=agent_auth(cam))).status_code == 200
