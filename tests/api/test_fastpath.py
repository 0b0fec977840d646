"""The heartbeat fast path answers exactly as the FastAPI route does, and hands the route
everything it does not serve itself."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from api.fastpath import ROUTE_KEY
from tests.api.conftest import Backend, agent_auth, enroll, make_app, serve

pytestmark = pytest.mark.anyio
BEAT = {"battery_pct": 70.0, "links": [{"peer": "edge-1", "mbps": 40.0, "rtt_ms": 3.0}]}


async def _post(client: httpx.AsyncClient, device: str, headers: dict[str, str], body: Any) -> Any:
    return await client.post(f"/v1/agents/{device}/heartbeat", json=body, headers=headers)


async def test_the_fast_path_and_the_route_give_the_same_answer(
    backend: Backend, pool: ProcessPoolExecutor
) -> None:
    app = make_app(backend, pool)
    served: list[str] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:  # records who answered
        await inner(scope, receive, send)
        if scope["type"] == "http":
            served.append("fast" if scope.get(ROUTE_KEY) else "route")

    async with serve(app) as client:
        cp = app.state.control_plane
        inner = app.build_middleware_stack()
        app.middleware_stack = spy  # type: ignore[assignment]
        cam = await enroll(client, "cam-1")
        await enroll(client, "edge-1")
        fast = await _post(client, "cam-1", agent_auth(cam), BEAT)
        # Not in this replica's token cache (as if enrolled on another replica): the
        # route authenticates from SQL and answers.
        cp.agents.forget("cam-1")
        slow = await _post(client, "cam-1", agent_auth(cam), BEAT)
        assert served[-2:] == ["fast", "route"]
        assert fast.status_code == slow.status_code == 200
        assert (
            fast.json()
            == slow.json()
            == {
                "desired_version": cp.desired.revision,
                "interval_s": backend.settings.heartbeat_interval_s,
                "live_version": cp.desired.live_revision,
            }
        )
        # Both wrote the live state alone: the heartbeat and its measured link.
        assert (await cp.live.heartbeat("cam-1"))["battery_pct"] == 70.0
        assert ("cam-1", "edge-1") in await cp.live.links()


async def test_what_the_fast_path_does_not_serve_gets_the_routes_errors(
    client: httpx.AsyncClient,
) -> None:
    cam = await enroll(client, "cam-1")
    edge = await enroll(client, "edge-1")
    bad = await _post(client, "cam-1", agent_auth(cam), {"battery_pct": "full"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert "battery_pct" in bad.text
    other = await _post(client, "cam-1", agent_auth(edge), BEAT)
    assert other.status_code == 403 and "edge-1" in other.json()["detail"]
    unknown = await _post(client, "cam-1", {"Authorization": "Bearer cnt_agent_nope"}, BEAT)
    assert unknown.status_code == 401
    none = await _post(client, "cam-1", {"Authorization": ""}, BEAT)
    assert none.status_code == 401
