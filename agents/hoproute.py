"""`POST /v1/hop/{key}`, the data plane's hot path, as a bare ASGI handler."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from agents import tensorframe
from agents.ingress import arrived
from agents.problems import HopError, problem
from agents.state import ServingState
from agents.tensorframe import Frame, FrameError

HANDLER_HEADER = "X-Continuum-Handler-Ms"


@dataclass
class HopTiming:
    """What one hop took here: filled by `DataPlane.hop` for its caller, who knows when
    the request arrived and so the overhead: the rest of the time it spent."""

    key: str = ""
    compute_ms: float = 0.0
    downstream_ms: float = 0.0

    def overhead_ms(self, started: float, now: float | None = None) -> float:
        """Time from `started` to `now` (perf_counter; default: now) beyond compute and
        the hops after."""
        end = time.perf_counter() if now is None else now
        return (end - started) * 1000.0 - self.compute_ms - self.downstream_ms


class HopServer(Protocol):
    """What the hop handler needs of the data plane (`agents.dataplane.DataPlane`)."""

    state: ServingState

    @property
    def body_cap(self) -> int: ...

    def _check_token(self, deployment: str, token: str | None) -> None: ...

    async def hop(
        self, key: str, frame: Frame, token: str | None, timing: HopTiming | None = None
    ) -> Frame: ...


class HopRoute:
    """`POST /v1/hop/{key}` as a bare ASGI handler in front of FastAPI's routing.

    Hops are the data plane's hot path: FastAPI's routing, request object and dependency
    machinery cost more per request than a hop's whole budget allows. Here the body is
    read with bare ASGI messages and the answer written with two. Everything else passes
    through to the app.
    """

    PREFIX = "/v1/hop/"

    def __init__(self, app: ASGIApp, dp: HopServer) -> None:
        self.app = app
        self.dp = dp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        timing = HopTiming()
        try:
            if scope["method"] != "POST":
                raise HopError(405, "a hop is a POST")
            payload, handler_ms = await self._hop(scope, receive, timing)
        except HopError as exc:
            await problem(exc.status, exc.detail)(scope, receive, send)
            return
        except ClientDisconnect:
            return
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", tensorframe.MEDIA_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                (HANDLER_HEADER.lower().encode(), f"{handler_ms:.3f}".encode()),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})
        # The hop's whole share here, from the request's first byte (agents/ingress.py) to
        # the answer's last, beyond its partition and the hops after it.
        started = arrived(scope.get("state") or {})
        self.dp.state.metrics.observe_overhead(timing.key, timing.overhead_ms(started))

    async def _hop(self, scope: Scope, receive: Receive, timing: HopTiming) -> tuple[bytes, float]:
        dp = self.dp
        key = scope["path"][len(self.PREFIX) :]
        headers = dict(scope["headers"])  # names arrive in lower case
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        token = token.strip()
        loaded = dp.state.loaded.get(key)
        if loaded is None:
            raise HopError(404, f"partition {key!r} is not served on this device")
        dp._check_token(loaded.deployment, token if scheme.lower() == "bearer" and token else None)
        body = await _read_body(receive, headers.get(b"content-length"), dp.body_cap)
        try:
            frame = tensorframe.decode(body)
        except FrameError as exc:
            raise HopError(422, str(exc)) from None
        started = time.perf_counter()
        result = await dp.hop(key, frame, token, timing)
        # The receiver's own work (its partition, and the hops after it); what the sender
        # measures beyond this is the hop's cost.
        handler_ms = (time.perf_counter() - started) * 1000.0
        return tensorframe.encode(result.tensors, result.meta), handler_ms


async def _read_body(receive: Receive, declared: bytes | None, cap: int) -> bytes:
    """The request body, 413 over `cap` (before reading a byte when the length is
    declared). A body that arrives in one piece is used as it is, without a copy."""
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HopError(413, f"the body is {int(declared)} bytes; the cap is {cap}")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            raise HopError(413, f"the body exceeds the cap of {cap} bytes")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
