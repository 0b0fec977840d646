"""The heartbeat hot path, served ahead of the whole middleware stack and of FastAPI's
routing and dependency machinery.

Only the happy path is served here: a POST to /v1/agents/{id}/heartbeat that declares a
length within the JSON body limit, whose bearer token is that device's (from the
in-memory cache), checked before a byte of the body is read, and whose body validates.
Anything else (no token, another device's token, a token the cache does not know yet, no
declared length or too long a one, a bad body) is handed to the regular stack, untouched
or with the body replayed: body limits (`api/limits.py`), timing, then the FastAPI route,
so every error is answered exactly as documented in the OpenAPI schema, and the
documented route stays the one contract. It sits ahead of the whole app, FastAPI's and
Starlette's own layers included (`api.app._App`), so that a heartbeat is authenticated,
read and timed once, not once by each middleware in turn. A failure while it serves one
is answered by the app's error handler, as it would be behind them.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.wire import Heartbeat, HeartbeatAck
from orchestrator import tokens
from orchestrator.control_plane import ControlPlane

if TYPE_CHECKING:
    from orchestrator.services.agents import Ack

_PATH = re.compile(r"^/v1/agents/([A-Za-z0-9._-]{1,64})/heartbeat$")
_MAX_BODY = 1 << 20
ROUTE = "/v1/agents/{device_id}/heartbeat"
_HEADERS = [(b"content-type", b"application/json")]

# The app's handler of unexpected errors: a Response, or an awaitable of one.
OnError = Callable[[Request, Exception], Any]


class HeartbeatFastPath:
    """`app`: what answers everything else. `on_error`: the app's handler of unexpected
    errors (`api/problems.py`), for a failure while serving a heartbeat (Redis down: a
    503), answered as Starlette's ServerErrorMiddleware would answer it, which is not
    between the fast path and the server."""

    def __init__(
        self,
        app: ASGIApp,
        control_plane: ControlPlane,
        on_error: OnError | None = None,
    ) -> None:
        self.app = app
        self.cp = control_plane
        self.on_error = on_error
        # BodyLimits' limit for a JSON body (`api.limits.Limits.of`).
        self.limit = min(control_plane.settings.max_json_body_kb * 1024, _MAX_BODY)
        # The timing middleware's series for this route, looked up once.
        self._timed = {
            status: control_plane.metrics.http_seconds.labels("POST", ROUTE, status)
            for status in ("200", "500")
        }
        self._ack: Ack | None = None  # the last answer, and its response messages
        self._start: Message = {}
        self._body: Message = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        device_id = match.group(1)
        token, length = _token_and_length(scope)
        # Declined unread, as body limits would refuse it or a route would answer it.
        if (
            token is None
            or length is None
            or length > self.limit
            or self.cp.agents.cached_agent(tokens.hash_token(token)) != device_id
        ):
            await self.app(scope, receive, send)
            return
        body, more = await _read(receive, self.limit)
        try:
            beat = None if more else Heartbeat.model_validate_json(body)
        except ValidationError:
            beat = None
        if beat is None:
            await self.app(scope, replay(body, more, receive), send)
            return
        status = "500"
        try:
            try:
                answer = await self.cp.agents.heartbeat(device_id, beat.model_dump())
            except Exception as exc:
                # Nothing sent yet: the error's own answer (Redis down: a 503), then raised
                # on to the server, which logs it, as ServerErrorMiddleware does.
                if self.on_error is not None:
                    response = self.on_error(Request(scope), exc)
                    if inspect.isawaitable(response):
                        response = await response
                    await response(scope, receive, send)
                raise
            await self._send(answer, send)
            status = "200"
        finally:
            self._timed[status].observe(time.perf_counter() - started)

    async def _send(self, answer: Ack, send: Send) -> None:
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


def _token_and_length(scope: Scope) -> tuple[str | None, int | None]:
    """The bearer token, and the declared body length (None when chunked or absent)."""
    token: str | None = None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            token = secret.strip() if scheme.lower() == "bearer" and secret.strip() else None
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            return token, None
    return token, length


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, up to `limit`; `more` is True when it is longer (the slow path then
    reads the rest, and body limits refuse it)."""
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
        if size > limit:
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
