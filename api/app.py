"""The app factory: `create_app(settings)` -> a FastAPI app whose lifespan starts and
stops one ControlPlane; its routes call the services over it (`app.state.services`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import openapi, problems
from api.console import pages as console
from api.fastpath import HeartbeatFastPath
from api.limits import BodyLimits
from api.routers import agents, artifacts, deployments, devices, events, health, links, models
from api.routers import plan as plan_router
from api.routers import tokens as tokens_router
from orchestrator.control_plane import ControlPlane
from orchestrator.metrics import Metrics
from orchestrator.services.registry import Services
from orchestrator.settings import Settings


class _Timing:
    """Records each request's latency by route template (pure ASGI: no per-request task
    or body buffering, unlike BaseHTTPMiddleware, which matters on the heartbeat path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None)
            # Included routers report their path without the mount prefix.
            prefix = "/v1" if scope["path"].startswith("/v1/") and route else ""
            template = prefix + route if route else "unmatched"
            self.metrics.http_seconds.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - start
            )


def create_app(settings: Settings | None = None, **control_plane_options: Any) -> FastAPI:
    """The control plane's HTTP API. Options (`live`, `executor`, `migrate`, `boavizta`) are
    passed to ControlPlane: tests use them to share a process pool, a live-state prefix or
    one Boavizta worker."""
    settings = settings if settings is not None else Settings()
    cp = ControlPlane(settings, **control_plane_options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await cp.start()
        try:
            yield
        finally:
            await cp.stop()

    app = _App(
        title="Continuum control plane",
        version="1",
        summary="Places DNN inference across device, edge and cloud.",
        lifespan=lifespan,
    )
    app.openapi = lambda: openapi.build(app)  # type: ignore[method-assign]
    app.state.control_plane = cp
    app.state.services = Services.over(cp)
    problems.install(app)
    v1 = "/v1"
    app.include_router(tokens_router.router, prefix=v1)
    app.include_router(agents.router, prefix=v1)
    app.include_router(artifacts.router, prefix=v1)
    app.include_router(devices.router, prefix=v1)
    app.include_router(links.router, prefix=v1)
    app.include_router(models.router, prefix=v1)
    app.include_router(deployments.router, prefix=v1)
    app.include_router(plan_router.router, prefix=v1)
    app.include_router(events.router, prefix=v1)
    app.include_router(health.audit_router, prefix=v1)
    app.include_router(health.router)
    # The operator console (docs/console.md): its pages, and its assets from the package.
    app.include_router(console.router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC_DIR), name="console-static")
    app.add_exception_handler(console.LoginRequired, console.login_redirect)
    # Outermost last. Body limits (with authentication before a body is read) come before
    # anything reads one; timing wraps them. The heartbeat fast path, ahead of the whole
    # app (`_App`), makes their checks itself for the one request it serves, times it,
    # and hands everything else to the app unread (api/fastpath.py).
    app.add_middleware(BodyLimits, control_plane=cp)
    app.add_middleware(_Timing, metrics=cp.metrics)
    app.fast_path = HeartbeatFastPath(app.serve, cp, on_error=app.exception_handlers.get(Exception))
    return app


class _App(FastAPI):
    """FastAPI with the heartbeat fast path (`api/fastpath.py`) ahead of FastAPI's and
    Starlette's own layers as well (telemetry check, error middleware, FastAPI's body
    limit), which cost a heartbeat about a fifth of what the fast path itself does
    (py-spy, bench/RESULTS.md "Heartbeats", hb5). What the fast path does not serve goes
    through all of them (`serve`)."""

    fast_path: HeartbeatFastPath
    # Whether FastAPI's native OpenTelemetry instrumentation is on, asked once: when it
    # is (a tracer, meter or logger provider configured at start), every request,
    # heartbeats included, goes through FastAPI's whole stack to be traced.
    _instrumented: bool | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            if self._instrumented is None:
                self._instrumented = self._native_telemetry.enabled()
            if not self._instrumented:
                await self.fast_path(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole app: FastAPI's layers, the middleware, the routes."""
        await super().__call__(scope, receive, send)
