"""A request's whole time in the agent: from its first byte to the last byte of its answer.

A client's round trip is the agent's share plus its own and the network's. The agent's
share starts before any ASGI app runs: the HTTP server reads the request line, headers
and body, and it ends after the handler returns, when the server writes the answer.
Timed from the ASGI app's entry to the handler's return, the contract's `overhead_ms`
missed both ends. (What is left of a client's round trip beyond this share is the
client's own work and, on a loaded machine, its waits to be scheduled:
bench/client_gap.py, bench/RESULTS.md "Calibration, third session".)

- `timed_protocol()`: uvicorn's HTTP protocol, stamping each request with the time the
  data that began it reached the process (`ARRIVED` in the ASGI scope's `state`).
- `AnswerClock`: the outermost ASGI middleware. It stamps `ARRIVED` itself when the
  server did not (another server, or an in-process transport), and once the last body
  message of the answer has been handed to the server, calls what the handler asked to
  be told (`when_answered`) with the time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ARRIVED = "continuum_arrived"  # scope state: perf_counter() when the request's first byte came
_ANSWERED = "continuum_answered"  # scope state: callbacks for when the answer is sent


def arrived(state: MutableMapping[str, Any]) -> float:
    """When the request began (perf_counter), stamped by the server or `AnswerClock`."""
    value = state.get(ARRIVED)
    return float(value) if isinstance(value, float) else time.perf_counter()


def when_answered(state: MutableMapping[str, Any], callback: Callable[[float], None]) -> None:
    """Call `callback(perf_counter())` once the answer's last byte is handed to the server."""
    state.setdefault(_ANSWERED, []).append(callback)


class AnswerClock:
    """Outermost ASGI middleware: the request's start (see the module) and its end."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state.setdefault(ARRIVED, time.perf_counter())

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                now = time.perf_counter()
                for callback in state.pop(_ANSWERED, ()):
                    callback(now)

        await self.app(scope, receive, timed_send)


def timed_protocol() -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol (httptools when installed, as uvicorn's "auto"; else
    h11) that stamps each request's scope with `ARRIVED`: when the data holding its first
    byte reached the process."""
    base: type[Any]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools is a dependency here
        from uvicorn.protocols.http.h11_impl import H11Protocol as base

    class Timed(base):
        # uvicorn builds a request's scope (with a copy of `app_state` as its `state`)
        # while parsing the data in which the request begins, inside `data_received`; the
        # stamp is in `app_state` only for that call, which nothing else can interleave
        # with on the event loop.
        def data_received(self, data: bytes) -> None:
            self.app_state[ARRIVED] = time.perf_counter()
            try:
                super().data_received(data)
            finally:
                self.app_state.pop(ARRIVED, None)

    Timed.__name__ = Timed.__qualname__ = f"Timed{base.__name__}"
    return Timed
