"""The heartbeat hot path, served before FastAPI's routing and dependency machinery.

Only the happy path is served here: a POST to /v1/agents/{id}/heartbeat whose bearer
token is that device's (from the in-memory cache) and whose body validates. Anything
else (no token, another device's token, a token the cache does not know yet, a bad
body) is handed to the regular FastAPI route with the body replayed, so every error is
answered exactly as documented in the OpenAPI schema, and the documented route stays
the one contract.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire import Heartbeat, HeartbeatAck
from orchestrator import tokens
from orchestrator.control_plane import ControlPlane

if TYPE_CHECKING:
    from orchestrator.services.agents import Ack

_PATH = re.compile(r"^/v1/agents/([A-Za-z0-9._-]{1,64})/heartbeat$")
_MAX_BODY = 1 << 20
ROUTE = "/v1/agents/{device_id}/heartbeat"
ROUTE_KEY = "continuum.route"  # the metrics label, since no router matched
_HEADERS = [(b"content-type", b"application/json")]


class HeartbeatFastPath:
    def __init__(self, app: ASGIApp, control_plane: ControlPlane) -> None:
        self.app = app
        self.cp = control_plane
        self._ack: Ack | None = None  # the last answer, and its response messages
        self._start: Message = {}
        self._body: Message = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body, more = await _read(receive)
        device_id = match.group(1)
        owner = None
        if not more:
            token = _bearer(scope)
            if token is not None:
                owner = self.cp.agents.cached_agent(tokens.hash_token(token))
        beat = None
        if owner == device_id:
            try:
                beat = Heartbeat.model_validate_json(body)
            except ValidationError:
                beat = None
        if beat is None:
            await self.app(scope, replay(body, more, receive), send)
            return
        scope[ROUTE_KEY] = ROUTE
        answer = await self.cp.agents.heartbeat(device_id, beat.model_dump())
        # Every agent gets the same answer until a revision changes: encoded once per change.
        if answer != self._ack:
            payload = (
                HeartbeatAck(
                    desired_version=answer.desired_version,
                    interval_s=answer.interval_s,
                    live_version=answer.live_version,
                )
                .model_dump_json()
                .encode()
            )
            self._ack = answer
            self._start = {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
            self._body = {"type": "http.response.body", "body": payload}
        # Copies: a server or middleware may add to what it is sent.
        await send({**self._start, "headers": list(self._start["headers"])})
        await send(dict(self._body))


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _read(receive: Receive) -> tuple[bytes, bool]:
    """The body, up to _MAX_BODY; `more` is True when it is longer (the slow path then
    reads the rest)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > _MAX_BODY:
            return b"".join(chunks), True


def replay(body: bytes, more: bool, receive: Receive) -> Receive:
    """A `receive` that hands the app the part of the body already read (`body`, and
    `more` if the rest still streams), then the rest from `receive`."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return receive_again
