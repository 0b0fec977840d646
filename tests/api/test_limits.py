"""Body limits and authentication before the body (api/limits.py): a 50 MB body with no
token is a 401 with none of it read, and every route caps its body, declared or chunked,
with a 413 problem+json (issue #18)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.api.conftest import ADMIN, agent_auth, enroll

pytestmark = pytest.mark.anyio

CHUNK = b" " * 65536
FIFTY_MB = 50 * 1_000_000


@dataclass
class Body:
    """A body streamed in 64 KiB chunks that counts how much of it the server pulled."""

    size: int
    pulled: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.size:
            piece = CHUNK[: self.size - sent]
            self.pulled += len(piece)
            sent += len(piece)
            yield piece


async def _post(
    client: httpx.AsyncClient, path: str, body: Body, declare: bool, **headers: str
) -> httpx.Response:
    extra = {"Content-Length": str(body.size)} if declare else {}
    return await client.post(
        path,
        content=body.chunks(),
        headers={"Content-Type": "application/json", **extra, **headers},
    )


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail: str = response.json()["detail"]
    return detail


async def test_no_token_is_401_before_a_byte_of_the_body(client: httpx.AsyncClient) -> None:
    for declare in (True, False):
        for auth in ("", "Bearer not-a-token", "Basic x"):
            body = Body(FIFTY_MB)
            response = await _post(client, "/v1/deployments", body, declare, Authorization=auth)
            assert "token" in _problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            # httpx may have one chunk in flight when the answer comes: nothing more.
            assert body.pulled <= len(CHUNK), (declare, auth, body.pulled)
    cam = await enroll(client, "cam-1")
    other = {"Authorization": "Bearer cnt_agent_unknown"}
    response = await _post(client, "/v1/agents/cam-1/heartbeat", Body(FIFTY_MB), True, **other)
    _problem(response, 401)
    assert cam["agent_token"]


async def test_every_route_caps_its_body_declared_or_chunked(client: httpx.AsyncClient) -> None:
    cam = await enroll(client, "cam-1")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    cases = [
        ("/v1/deployments", admin, 1024 * 1024),
        ("/v1/agents/cam-1/heartbeat", agent_auth(cam), 1024 * 1024),
        ("/v1/agents/enroll", {"Authorization": ""}, 64 * 1024),
    ]
    for path, auth, limit in cases:
        declared = Body(FIFTY_MB)
        assert str(limit) in _problem(await _post(client, path, declared, True, **auth), 413)
        assert declared.pulled <= len(CHUNK), path
        chunked = Body(FIFTY_MB)
        assert str(limit) in _problem(await _post(client, path, chunked, False, **auth), 413)
        # Read up to the limit, then refused: not the 50 MB.
        assert chunked.pulled <= limit + 2 * len(CHUNK), (path, chunked.pulled)
    # Under the limit, a body goes through as before.
    r = await client.post(
        "/v1/agents/cam-1/heartbeat", json={"battery_pct": 50}, headers=agent_auth(cam)
    )
    assert r.status_code == 200, r.text


async def test_an_upload_streamed_past_its_limit_is_413(client: httpx.AsyncClient) -> None:
    # The test settings cap uploads at 1 MB; multipart without a declared length.
    boundary = "b0undary"

    async def multipart() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for _ in range(3 * 1_000_000 // len(CHUNK)):
            yield CHUNK

    response = await client.post(
        "/v1/models",
        content=multipart(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    _problem(response, 413)
    assert (await client.get("/v1/models")).json() == []
