"""Body limits and authentication before any work on a request's body.

FastAPI reads and parses a JSON body before it runs a route's dependencies, so without
this a 50 MB body with no token is read, held and parsed before its 401. This pure ASGI
middleware sits ahead of everything else (the heartbeat fast path included) and:

1. on a /v1 route that needs a token, answers 401 to a body-carrying request whose bearer
   token is missing or unknown, unread (`POST /v1/agents/enroll` carries its own
   enrollment token in the body, and is only size-capped);
2. refuses a declared Content-Length over the route's limit with 413, unread;
3. caps the body as it streams in (chunked bodies declare no length): a JSON body is read
   here up to its limit and replayed, an upload is counted and cut off at its limit.

Authorization (which operator or agent may do what) stays with the routes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.fastpath import replay
from api.problems import problem
from orchestrator import tokens
from orchestrator.control_plane import ControlPlane
from orchestrator.errors import TooLarge

KB = 1024
_UPLOADS = re.compile(r"^/v1/models(/[^/]+/exits)?$")
# JSON, or multipart with calibration data for a static int8 variant: an upload then.
_VARIANTS = re.compile(r"^/v1/models/[^/]+/variants$")
_PUBLIC = {("POST", "/v1/agents/enroll")}
# Multipart headers, boundaries and small fields around an upload's file.
_ENVELOPE = 1 << 20


@dataclass(frozen=True)
class Limits:
    json_bytes: int
    enroll_bytes: int
    upload_bytes: int

    def of(self, method: str, path: str, multipart: bool = False) -> tuple[int, bool]:
        """(the limit, whether the body is streamed through rather than read here)."""
        if method == "POST" and (_UPLOADS.match(path) or (multipart and _VARIANTS.match(path))):
            return self.upload_bytes + _ENVELOPE, True
        if (method, path) in _PUBLIC:
            return self.enroll_bytes, False
        return self.json_bytes, False


class BodyLimits:
    def __init__(self, app: ASGIApp, control_plane: ControlPlane) -> None:
        self.app = app
        self.cp = control_plane
        s = control_plane.settings
        self.limits = Limits(
            json_bytes=s.max_json_body_kb * KB,
            enroll_bytes=s.max_enroll_body_kb * KB,
            upload_bytes=int(s.max_upload_mb * 1_000_000),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        chunked = b"transfer-encoding" in headers
        if declared is None and not chunked:
            await self.app(scope, receive, send)  # no body
            return
        length = int(declared) if declared is not None and declared.isdigit() else None
        if length == 0 and not chunked:
            await self.app(scope, receive, send)
            return
        if path.startswith("/v1/") and (method, path) not in _PUBLIC:
            refusal = await self._authenticate(headers.get(b"authorization"))
            if refusal is not None:
                await _answer(scope, send, 401, refusal, {"WWW-Authenticate": "Bearer"})
                return
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit, streamed = self.limits.of(method, path, multipart)
        if length is not None and length > limit:
            await _answer(scope, send, 413, _too_large(limit))
            return
        if streamed:
            await self.app(scope, _capped(receive, limit), send)
            return
        body, whole = await _read(receive, limit)
        if not whole:
            await _answer(scope, send, 413, _too_large(limit))
            return
        await self.app(scope, replay(body, False, receive), send)

    async def _authenticate(self, header: bytes | None) -> str | None:
        """None when the bearer token is an operator's or an agent's, else why not."""
        scheme, _, token = (header or b"").decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "missing bearer token: send 'Authorization: Bearer <token>'"
        agents = self.cp.agents
        if agents.cached_agent(tokens.hash_token(token)) is not None:
            return None
        if await agents.operator(token) is not None or await agents.agent_for(token):
            return None
        return "unknown or revoked token: an operator or agent token is required"


def _too_large(limit: int) -> str:
    return f"the request body exceeds this route's limit of {limit} bytes"


async def _answer(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    response = problem(status, detail, instance=scope["path"], headers=headers)
    # The body is left unread: the server closes the connection after this answer.
    response.headers["Connection"] = "close"

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, or (what was read, False) as soon as it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _capped(receive: Receive, limit: int) -> Receive:
    """The body as it streams, cut off with TooLarge (413) past `limit`."""
    size = 0

    async def capped() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise TooLarge(f"the request body exceeds this route's limit of {limit} bytes")
        return message

    return capped
