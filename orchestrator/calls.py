"""The two calls the control plane hands its pieces instead of itself: a function run in
one SQL transaction in a worker thread (`RunSync`, `ControlPlane.run_sync`) and a
message published on the event bus (`Publish`, `EventBus.publish`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class RunSync(Protocol):
    """fn(session, *args) in a worker thread, in one transaction."""

    def __call__(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...


class Publish(Protocol):
    """An event of `kind` to every replica and watcher."""

    def __call__(self, kind: str, data: dict[str, Any]) -> Awaitable[None]: ...
